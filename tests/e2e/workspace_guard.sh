#!/bin/sh
# Git settings planted in the workspace do not run on the host, end to end on
# the native backend. The workspace is a git repository with a second one at
# its top (lib/). The agent, in a real bottle, tries what would make the
# user's next `git status` or `git commit` run its command: append
# core.fsmonitor to .git/config, write .git/hooks/pre-commit, .gitmodules and
# .git/info/attributes, the same in lib/, `git config`, and moving .git (or
# lib/) away to put its own in place. Each fails (EROFS, EBUSY), while
# `git commit` and `git branch` inside the bottle work. A path in the bottle's
# workspace.read_only is read-only too. What no mount can stop, a new
# .git/commondir, is moved aside after the run, and a host `git status`
# afterwards runs none of the agent's commands.
. "$BOTTLE_SRC/tests/lib.sh"

N=12
plan $N
if ! is_root; then
    for i in $(seq 1 $N); do skip "workspace_guard $i" kernel "needs root"; done
    exit 0
fi
command -v git >/dev/null 2>&1 || {
    for i in $(seq 1 $N); do skip "workspace_guard $i" kernel "git is not installed"; done
    exit 0
}

W=$T_TMP
export BOTTLE_HOME="$W/home"
WS="$W/ws"
MARK="$W/pwned"
mkdir -p "$BOTTLE_HOME/agents" "$BOTTLE_HOME/bottles" "$WS"
unset SUDO_UID SUDO_GID

hgit() { git -c safe.directory='*' -C "$WS" "$@"; }

cat >"$BOTTLE_HOME/bottles/wg.md" <<EOF
---
agent_provider:
  template: generic
  command: [sh, $WS/agent.sh]
workspace:
  read_only: [docs, not-there]
---
EOF
printf -- '---\nbottle: wg\n---\nPlant git settings.\n' >"$BOTTLE_HOME/agents/wg.md"

# The workspace: a repository (with .gitmodules) and lib/, a repository at its top.
hgit init -q
git -c safe.directory='*' -C "$WS" -c user.name=u -c user.email=u@x commit -q --allow-empty -m init
printf '[submodule "x"]\n\tpath = x\n\turl = ./x\n' >"$WS/.gitmodules"
mkdir -p "$WS/docs" "$WS/lib"
echo "keep" >"$WS/docs/README"
git -c safe.directory='*' -C "$WS/lib" init -q
rm -rf "$WS/.git/hooks" # a repository without hooks: bottle creates an empty one to protect
cp "$WS/.git/config" "$W/config.before"
cat >"$WS/agent.sh" <<EOF
MARK=$MARK
EOF
cat >>"$WS/agent.sh" <<'EOF'
cd "$(dirname "$0")"
exec python3 - "$MARK" <<'PY'
import errno, os, subprocess, sys
mark = sys.argv[1]
res = open("result", "w", buffering=1)
def attempt(name, fn):
    try:
        fn()
        res.write("%s=done\n" % name)
    except OSError as e:
        res.write("%s=%s\n" % (name, errno.errorcode.get(e.errno, str(e.errno))))
def append(path, text):
    def f():
        with open(path, "a") as fh:
            fh.write(text)
    return f
cmd = "touch %s" % mark
attempt("config", append(".git/config", "[core]\n\tfsmonitor = \"%s; false\"\n" % cmd))
attempt("hook", append(".git/hooks/pre-commit", "#!/bin/sh\n%s\n" % cmd))
attempt("gitmodules", append(".gitmodules", "[submodule \"y\"]\n\tupdate = !%s\n" % cmd))
attempt("attributes", append(".git/info/attributes", "* filter=evil\n"))
attempt("lib_config", append("lib/.git/config", "[core]\n\tfsmonitor = \"%s\"\n" % cmd))
attempt("lib_hook", append("lib/.git/hooks/post-checkout", "#!/bin/sh\n%s\n" % cmd))
attempt("docs", append("docs/README", "changed\n"))
attempt("docs_new", append("docs/new", "x\n"))
attempt("mv_git", lambda: os.rename(".git", ".git-away"))
attempt("mv_lib", lambda: os.rename("lib", "lib-away"))
attempt("mv_info", lambda: os.rename(".git/info", ".git/info-away"))
git = ["git", "-c", "safe.directory=*", "-c", "user.name=agent", "-c", "user.email=agent@bottle.invalid"]
def run(name, args):
    p = subprocess.run(git + args, capture_output=True)
    res.write("%s=%s\n" % (name, "ok" if p.returncode == 0 else "failed"))
run("git_config", ["config", "core.fsmonitor", cmd])
open("work.txt", "w").write("from the agent\n")
run("git_add", ["add", "work.txt"])
run("git_commit", ["commit", "-q", "-m", "agent work"])
run("git_branch", ["branch", "agent-branch"])
# What no mount can stop: point git at a directory of the agent's own.
os.makedirs("evil", exist_ok=True)
subprocess.run(["cp", "-r", ".git/objects", ".git/refs", ".git/HEAD", "evil/"])
open("evil/config", "w").write("[core]\n\trepositoryformatversion = 0\n\tfsmonitor = \"%s; false\"\n" % cmd)
attempt("commondir", lambda: open(".git/commondir", "w").write("../evil\n"))
PY
EOF
# The agent runs as its bottle's own pool uid, not known before start: the workspace is open to it.
chmod -R a+rwX "$WS"

(cd "$WS" && exec "$BOTTLE" start wg) >"$W/out" 2>"$W/err"
rc=$?
R=$WS/result
res() { grep -q "^$1\$" "$R" 2>/dev/null; }
check_res() {
    name=$1
    shift
    for want in "$@"; do
        if ! res "$want"; then
            fail "$name" "want $want" "$(cat "$R" 2>/dev/null)" "$(cat "$W/out" "$W/err")"
            return
        fi
    done
    ok "$name"
}

if [ $rc -eq 0 ] && [ -s "$R" ]; then ok "the agent ran (exit 0)"; else fail "agent ran" "rc=$rc" "$(cat "$W/out" "$W/err")"; fi
check_res "appending core.fsmonitor to .git/config fails (EROFS)" "config=EROFS"
check_res "creating .git/hooks/pre-commit fails (EROFS; the missing hooks dir was made empty)" "hook=EROFS"
# The attributes file the guard created is root's: the write fails on its mode (EACCES) before the
# read-only mount is reached (EROFS); either way nothing is written (checked on the host in 10).
if res "gitmodules=EROFS" && { res "attributes=EROFS" || res "attributes=EACCES"; }; then
    ok "writing .gitmodules and .git/info/attributes fails (EROFS or EACCES)"
else
    fail "writing .gitmodules and .git/info/attributes fails" "$(cat "$R" 2>/dev/null)"
fi
check_res "lib/ at the top of the workspace: config and hooks fail (EROFS)" "lib_config=EROFS" "lib_hook=EROFS"
check_res "moving .git, lib/ or .git/info away fails (EBUSY)" "mv_git=EBUSY" "mv_lib=EBUSY" "mv_info=EBUSY"
check_res "workspace.read_only: docs/ cannot be changed or added to (EROFS)" "docs=EROFS" "docs_new=EROFS"
check_res "git config cannot write the repository's config" "git_config=failed"
check_res "git add, commit and branch work inside the bottle" "git_add=ok" "git_commit=ok" "git_branch=ok"

# On the host: the settings are as they were, the agent's work is there.
if cmp -s "$W/config.before" "$WS/.git/config" && [ ! -e "$WS/.git/hooks/pre-commit" ] &&
    [ -d "$WS/.git/hooks" ] && [ ! -s "$WS/.git/info/attributes" ] &&
    [ "$(cat "$WS/docs/README")" = "keep" ] && hgit log --format=%s -1 | grep -q "agent work" &&
    hgit rev-parse --verify -q agent-branch >/dev/null &&
    grep -q "not-there does not exist; not protected" "$W/err"; then
    ok "host: config, hooks, attributes and docs unchanged; the agent's commit and branch are there"
else
    fail "host state" "$(diff "$W/config.before" "$WS/.git/config")" "$(ls -la "$WS/.git/hooks")" "$(hgit log --oneline -2)" "$(cat "$W/err")"
fi

# The planted commondir was moved aside after the run, and said so.
if res "commondir=done" && [ ! -e "$WS/.git/commondir" ] && [ -f "$WS/.git/commondir.bottle-planted" ] &&
    grep -q "created $WS/.git/commondir" "$W/err"; then
    ok "a planted .git/commondir is moved aside after the run and reported"
else
    fail "commondir" "$(ls "$WS/.git")" "$(cat "$W/err")"
fi

# The user's next git commands run nothing of the agent's.
(cd "$WS" && git -c safe.directory='*' status >/dev/null 2>&1)
(cd "$WS/lib" && git -c safe.directory='*' status >/dev/null 2>&1)
(cd "$WS" && git -c safe.directory='*' -c user.name=u -c user.email=u@x commit -q --allow-empty -m host >/dev/null 2>&1)
if [ ! -e "$MARK" ]; then
    ok "host git status and commit afterwards run none of the agent's commands"
else
    fail "the agent's command ran on the host"
fi

#!/bin/sh
# `bottle trust` without a bottle (no root needed): what it records and where,
# --list and its states, --revoke, bad input, and how start --dry-run, info and
# a real start see untrusted project files. tests/e2e/project_trust.sh runs the
# attack from inside a real bottle.
. "$BOTTLE_SRC/tests/lib.sh"

plan 11

export BOTTLE_HOME="$T_TMP/home"
P="$T_TMP/proj"
mkdir -p "$BOTTLE_HOME/agents" "$BOTTLE_HOME/bottles" "$P/.bottle/bottles"
printf -- '---\nagent_provider:\n  template: generic\n  command: ["true"]\n---\n' \
    >"$BOTTLE_HOME/bottles/b.md"
printf -- '---\nbottle: b\n---\nHi.\n' >"$BOTTLE_HOME/agents/a.md"
printf -- '---\nagent_provider:\n  template: generic\n  command: [echo, project]\n---\n' \
    >"$P/.bottle/bottles/b.md"
cd "$P" || exit 1

# 1: untrusted: start refuses before anything (exit 3), dry-run shows it (exit 0)
out=$("$BOTTLE" start a 2>&1)
rc=$?
dry=$("$BOTTLE" start a --dry-run 2>&1)
drc=$?
if [ $rc -eq 3 ] && echo "$out" | grep -q "bottle trust $P" && [ $drc -eq 0 ] &&
    echo "$dry" | grep -q "command      echo project" && echo "$dry" | grep -q "untrusted"; then
    ok "untrusted: start exits 3 with the trust command; --dry-run shows the project's plan, marked"
else
    fail "untrusted" "rc=$rc drc=$drc" "$out" "$dry"
fi

# 2: info works on untrusted files and says so
out=$("$BOTTLE" info b 2>&1)
if echo "$out" | grep -q "note: the project files in $P/.bottle are not trusted" &&
    echo "$out" | grep -q "bottle b ($P/.bottle/bottles/b.md)"; then
    ok "info shows untrusted project files with a note"
else
    fail "info note" "$out"
fi

# 3: trust records in $BOTTLE_HOME/trust only, 0600
out=$("$BOTTLE" trust 2>&1)
rc=$?
rec=$(ls "$BOTTLE_HOME/trust/"*.json 2>/dev/null)
mode=$(stat -c %a "$rec" 2>/dev/null)
if [ $rc -eq 0 ] && echo "$out" | grep -q "trusted 1 file in $P/.bottle" && [ "$mode" = 600 ] &&
    grep -q "\"project\": \"$P\"" "$rec" && [ "$(find "$P" -newer "$P/.bottle/bottles/b.md" | wc -l)" -eq 0 ]; then
    ok "trust writes one record (0600) in \$BOTTLE_HOME/trust and nothing in the project"
else
    fail "trust record" "rc=$rc mode=$mode" "$out" "$(cat "$rec" 2>/dev/null)"
fi

# 4: trusted: the dry-run plan is clean
dry=$("$BOTTLE" start a --dry-run --format json 2>&1)
if echo "$dry" | grep -q '"trust": "trusted"' && ! echo "$dry" | grep -q "start will refuse until"; then
    ok "trusted: the plan says trusted and warns of nothing"
else
    fail "trusted plan" "$dry"
fi

# 5: --list states: trusted, changed, missing; json
mkdir -p "$T_TMP/gone/.bottle" && echo x >"$T_TMP/gone/.bottle/f"
"$BOTTLE" trust "$T_TMP/gone/.bottle" >/dev/null 2>&1 # a .bottle given directly
rm -rf "$T_TMP/gone"
echo "# edited" >>"$P/.bottle/bottles/b.md"
list=$("$BOTTLE" trust --list)
json=$("$BOTTLE" trust --list --format json)
if echo "$list" | grep -q "^changed .*  $P\$" && echo "$list" | grep -q "^missing .*  $T_TMP/gone\$" &&
    echo "$json" | python3 -c 'import json,sys; d=json.load(sys.stdin)["trusted"]; sys.exit(0 if len(d)==2 and {x["state"] for x in d}=={"changed","missing"} else 1)'; then
    ok "--list shows each project's state now (changed, missing), text and json"
else
    fail "list" "$list" "$json"
fi

# 6: a changed file names itself
out=$("$BOTTLE" start a 2>&1)
if [ $? -eq 3 ] && echo "$out" | grep -q "changed  *bottles/b.md"; then
    ok "start after a change: exit 3, the changed file named"
else
    fail "changed" "$out"
fi

# 7: a file added or removed changes the digest too
"$BOTTLE" trust >/dev/null 2>&1
echo x >"$P/.bottle/notes.txt"
out=$("$BOTTLE" start a --dry-run 2>&1)
if echo "$out" | grep -q "new *notes.txt" && echo "$out" | grep -q "START WILL REFUSE"; then
    ok "any new file under .bottle/ (not only manifests) needs trust"
else
    fail "new file" "$out"
fi

# 7b (in 7): a damaged record is an error for start, and `bottle trust` replaces it
rec=$(ls "$BOTTLE_HOME/trust/"*.json | head -n 1)
for r in "$BOTTLE_HOME/trust/"*.json; do grep -q "\"project\": \"$P\"" "$r" && rec=$r; done
echo '{broken' >"$rec"
bad=$("$BOTTLE" start a --dry-run 2>&1)
brc=$?
fix=$("$BOTTLE" trust 2>&1)
frc=$?
if [ $brc -eq 2 ] && echo "$bad" | grep -q "not valid JSON" && [ $frc -eq 0 ] &&
    echo "$fix" | grep -q "replacing it" && "$BOTTLE" start a --dry-run 2>&1 | grep -q "project .*: trusted"; then
    ok "a damaged trust record stops every command (exit 2) until bottle trust replaces it"
else
    fail "damaged record" "brc=$brc frc=$frc" "$bad" "$fix"
fi

# 8: --revoke by a path that is gone, and of something never trusted
out1=$("$BOTTLE" trust --revoke "$T_TMP/gone" 2>&1)
rc1=$?
out2=$("$BOTTLE" trust --revoke "$T_TMP" 2>&1)
rc2=$?
if [ $rc1 -eq 0 ] && echo "$out1" | grep -q revoked && [ $rc2 -eq 0 ] &&
    echo "$out2" | grep -q "was not trusted" && ! "$BOTTLE" trust --list | grep -q gone; then
    ok "--revoke works for a project that is gone; revoking the untrusted says so"
else
    fail "revoke" "$out1" "$out2"
fi

# 9: bad input: exit 2 with a reason
"$BOTTLE" trust "$T_TMP/nonexistent" >/dev/null 2>&1
r1=$?
mkdir -p "$T_TMP/bare/.bottle"
out=$("$BOTTLE" trust "$T_TMP/bare" 2>&1)
r2=$?
"$BOTTLE" trust --format json >/dev/null 2>&1
r3=$?
"$BOTTLE" trust --list "$P" >/dev/null 2>&1
r4=$?
if [ $r1 -eq 2 ] && [ $r2 -eq 2 ] && echo "$out" | grep -q "nothing to trust" && [ $r3 -eq 2 ] && [ $r4 -eq 2 ]; then
    ok "bad input: missing directory, nothing to trust, --format without --list, --list with a directory: exit 2"
else
    fail "bad input" "r1=$r1 r2=$r2 r3=$r3 r4=$r4" "$out"
fi

# 10: running from $BOTTLE_HOME's parent where .bottle IS $BOTTLE_HOME: no project, nothing refused
H="$T_TMP/h"
mkdir -p "$H/.bottle/agents" "$H/.bottle/bottles"
cp "$BOTTLE_HOME/bottles/b.md" "$H/.bottle/bottles/"
cp "$BOTTLE_HOME/agents/a.md" "$H/.bottle/agents/"
out=$(cd "$H" && BOTTLE_HOME="$H/.bottle" "$BOTTLE" start a --dry-run 2>&1)
rc=$?
tout=$(cd "$H" && BOTTLE_HOME="$H/.bottle" "$BOTTLE" trust 2>&1)
trc=$?
if [ $rc -eq 0 ] && ! echo "$out" | grep -q "project " && [ $trc -eq 2 ] &&
    echo "$tout" | grep -q "is \$BOTTLE_HOME"; then
    ok "the user's own \$BOTTLE_HOME is never a project to trust"
else
    fail "home as project" "rc=$rc trc=$trc" "$out" "$tout"
fi

#!/bin/sh
# git through bottle-proxy: clone and fetch over smart HTTP with `git.fetch`, push refused,
# and fetch refused on a route without `git.fetch`. The upstream runs `git http-backend`.
. "$BOTTLE_SRC/tests/lib.sh"
. "$BOTTLE_SRC/tests/fixtures/sidecar_env.sh"

plan 4
for tool in git curl openssl python3; do
    if ! command -v $tool >/dev/null; then
        for i in 1 2 3 4; do skip "git case $i" "" "$tool missing"; done
        exit 0
    fi
done

make_pki || { fail "test PKI"; exit 1; }
mkdir -p "$W/git" && git init -q --bare "$W/git/r.git" && git -C "$W/git/r.git" config http.receivepack true
git init -q "$W/seed" && git -C "$W/seed" -c user.email=t@t -c user.name=t commit -q --allow-empty -m one &&
    git -C "$W/seed" push -q "$W/git/r.git" HEAD:refs/heads/main && git -C "$W/git/r.git" symbolic-ref HEAD refs/heads/main
start_upstream tls tls || { fail "upstream"; exit 1; }
UP=$(cat "$W/tls.port")
PLAIN=1
write_config "$W/cfg.json" '[{"host": "git.test:'$UP'", "git": {"fetch": true}}, {"host": "api.test:'$UP'"}]'
start_proxy "$W/cfg.json" || { fail "proxy start" "$(cat "$W/proxy.log")"; exit 1; }

export GIT_SSL_CAINFO="$W/pca/ca.pem" HTTPS_PROXY="http://127.0.0.1:$PX" GIT_TERMINAL_PROMPT=0
export GIT_CONFIG_GLOBAL=/dev/null
if out=$(git clone -q "https://git.test:$UP/git/r.git" "$W/clone" 2>&1) && [ -n "$(git -C "$W/clone" log --oneline)" ]; then
    ok "git clone through the proxy with git.fetch"
else fail "git clone" "$out" "$(tail -5 "$W/proxy.log")"; fi
git -C "$W/seed" -c user.email=t@t -c user.name=t commit -q --allow-empty -m two
git -C "$W/seed" push -q "$W/git/r.git" HEAD:refs/heads/main
if out=$(git -C "$W/clone" fetch -q 2>&1) && [ "$(git -C "$W/clone" rev-list --count origin/main)" = 2 ]; then
    ok "git fetch through the proxy"
else fail "git fetch" "$out"; fi
git -C "$W/clone" -c user.email=t@t -c user.name=t commit -q --allow-empty -m three
out=$(git -C "$W/clone" push origin HEAD:refs/heads/main 2>&1)
if [ $? -ne 0 ] && grep -q '"reason":"git_push_blocked"' "$W/proxy.log" &&
    [ "$(git -C "$W/git/r.git" rev-list --count main)" = 2 ]; then
    ok "git push refused: git_push_blocked, the remote is unchanged"
else fail "git push" "$out"; fi
out=$(git clone -q "https://api.test:$UP/git/r.git" "$W/clone2" 2>&1)
if [ $? -ne 0 ] && grep -q '"reason":"git_fetch_not_allowed"' "$W/proxy.log"; then
    ok "git clone on a route without git.fetch: git_fetch_not_allowed"
else fail "git fetch not allowed" "$out"; fi

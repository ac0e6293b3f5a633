#!/usr/bin/env bash
# Checks the Prometheus alert rules: syntax (promtool check rules) and behaviour (promtool test
# rules, alerts_test.yml: business hours, chain, forgeries, lag, 5xx, down, dead letters); the
# Prometheus configuration (promtool check config) and Alertmanager's (amtool check-config).
# promtool and amtool come with Debian's `prometheus` and `prometheus-alertmanager` packages;
# when missing this installs them (as root, with apt-get), and only when that is impossible it
# says so and exits 0 (the alert drill in .ci/run then fails). Also checks the Grafana dashboard is JSON
# and the shell scripts parse.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v promtool >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "promtool not found: installing Debian's prometheus package"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >/dev/null ||
    echo "apt-get install prometheus failed"
fi
if command -v promtool >/dev/null 2>&1; then
  promtool check rules prometheus/alerts.yml
  promtool test rules prometheus/alerts_test.yml
  promtool check config --syntax-only prometheus/prometheus.yml
else
  echo "promtool not installed (and it could not be installed): alert rules NOT checked"
fi
if ! command -v amtool >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "amtool not found: installing Debian's prometheus-alertmanager package"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus-alertmanager >/dev/null ||
    echo "apt-get install prometheus-alertmanager failed"
fi
if command -v amtool >/dev/null 2>&1; then
  amtool check-config alertmanager/alertmanager.yml
else
  echo "amtool not installed (and it could not be installed): Alertmanager configuration NOT checked"
fi
python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' alert_drill.py && echo "alert_drill.py parses"

for script in backup.sh restore.sh lib.sh check.sh; do bash -n "$script"; done
echo "shell scripts parse"
if command -v python3 >/dev/null 2>&1; then
  python3 -m json.tool grafana/revledger.json >/dev/null && echo "grafana/revledger.json is valid JSON"
elif command -v jq >/dev/null 2>&1; then
  jq empty grafana/revledger.json && echo "grafana/revledger.json is valid JSON"
fi
if command -v systemd-analyze >/dev/null 2>&1; then
  systemd-analyze verify systemd/revledger.service 2>&1 | grep -v 'revledger: No such file\|Command /usr/local/bin/revledger is not executable' || true
fi

#!/usr/bin/env bash
# A small Matrix homeserver for mosaic: Synapse from PyPI with SQLite, on 127.0.0.1, no federation.
# The Matrix tests use this same script.
#
#   homeserver.sh init DIR [--server-name NAME] [--port PORT] [--for-tests]
#       writes DIR/homeserver.yaml (SQLite in DIR, a fresh registration shared secret, signing key)
#   homeserver.sh run DIR
#       runs Synapse in the foreground (the systemd unit runs this)
#   homeserver.sh user DIR NAME [--admin]
#       creates a user with the registration shared secret; prints its password (random unless
#       MOSAIC_MATRIX_PASSWORD is set)
#   homeserver.sh setup DIR [--server-name NAME] [--port PORT] [--human NAME]
#       init + start + create the bot and your user + print the roster lines to paste
#   homeserver.sh unit DIR
#       writes the systemd user unit ~/.config/systemd/user/mosaic-synapse.service for DIR
#
# Synapse is installed into ~/.cache/mosaic-synapse by install-synapse.sh (the first run takes about
# a minute). See docs/connectors/matrix.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cmd="${1:-}"
dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
shift 2
bin="$(bash "$here/install-synapse.sh")"

server_name="localhost"
port=8008
for_tests=""
admin=""
human="${USER:-me}"
while [ $# -gt 0 ]; do
  case "$1" in
    --server-name) server_name="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --for-tests) for_tests=1; shift ;;
    --admin) admin=1; shift ;;
    --human) human="$2"; shift 2 ;;
    *) extra="$1"; shift ;;
  esac
done

random() { head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32; }

init() {
  mkdir -p "$dir"
  chmod 700 "$dir"
  dir="$(cd "$dir" && pwd)"
  if [ -e "$dir/homeserver.yaml" ]; then
    echo "$dir/homeserver.yaml exists; keeping it" >&2
    return
  fi
  local limits=""
  if [ -n "$for_tests" ]; then
    # Tests send bursts: lift the rate limits they would hit.
    limits='
rc_message: {per_second: 1000, burst_count: 1000}
rc_registration: {per_second: 1000, burst_count: 1000}
rc_login:
  address: {per_second: 1000, burst_count: 1000}
  account: {per_second: 1000, burst_count: 1000}
  failed_attempts: {per_second: 1000, burst_count: 1000}
rc_joins:
  local: {per_second: 1000, burst_count: 1000}
  remote: {per_second: 1000, burst_count: 1000}
rc_invites:
  per_room: {per_second: 1000, burst_count: 1000}
  per_user: {per_second: 1000, burst_count: 1000}
  per_issuer: {per_second: 1000, burst_count: 1000}
rc_room_creation: {per_second: 1000, burst_count: 1000}
rc_key_requests: {per_second: 1000, burst_count: 1000}
rc_delayed_event_mgmt: {per_second: 1000, burst_count: 1000}'
  fi
  umask 077
  cat > "$dir/homeserver.yaml" <<YAML
# Written by mosaic's deploy/matrix/homeserver.sh: a private homeserver on 127.0.0.1.
server_name: "$server_name"
pid_file: "$dir/homeserver.pid"
listeners:
  - port: $port
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: "$dir/homeserver.db"
log_config: "$dir/log.config"
media_store_path: "$dir/media_store"
signing_key_path: "$dir/signing.key"
registration_shared_secret: "$(random)"
macaroon_secret_key: "$(random)"
form_secret: "$(random)"
report_stats: false
enable_registration: false
trusted_key_servers: []
suppress_key_server_warning: true
federation_domain_whitelist: []
presence:
  enabled: false
$limits
YAML
  cat > "$dir/log.config" <<YAML
version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: "$dir/homeserver.log"
root:
  level: WARNING
  handlers: [file]
disable_existing_loggers: false
YAML
  "$bin/python" -m synapse.app.homeserver --config-path "$dir/homeserver.yaml" --generate-keys >/dev/null
}

if [ -f "$dir/homeserver.yaml" ]; then
  server_name=$(sed -n 's/^server_name: "\(.*\)"$/\1/p' "$dir/homeserver.yaml" | head -1)
fi

base_url() {
  local p
  p=$(sed -n 's/^  - port: \([0-9]*\)$/\1/p' "$dir/homeserver.yaml" | head -1)
  echo "http://127.0.0.1:$p"
}

user() {
  local name="$1" password="${MOSAIC_MATRIX_PASSWORD:-$(random)}" flag="--no-admin" file
  [ -n "$admin" ] && flag="--admin"
  # The password goes through a 0600 file, never the command line (where `ps` shows it).
  file="$(mktemp)"
  chmod 600 "$file"
  printf '%s' "$password" > "$file"
  if ! "$bin/register_new_matrix_user" -c "$dir/homeserver.yaml" -u "$name" \
    --password-file "$file" "$flag" "$(base_url)" >/dev/null; then
    rm -f "$file"
    return 1
  fi
  rm -f "$file"
  echo "$password"
}

running() {
  [ -f "$dir/homeserver.pid" ] && kill -0 "$(cat "$dir/homeserver.pid")" 2>/dev/null
}

case "$cmd" in
  init) init ;;
  run) exec "$bin/synapse_homeserver" -c "$dir/homeserver.yaml" ;;
  user) user "${extra:?a user name}" ;;
  setup)
    init
    dir="$(cd "$dir" && pwd)"
    running || "$bin/synapse_homeserver" -c "$dir/homeserver.yaml" --daemonize
    up=""
    for _ in $(seq 1 300); do
      if "$bin/python" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=2)" \
        "$(base_url)/_matrix/client/versions" >/dev/null 2>&1; then up=1; break; fi
      sleep 0.2
    done
    [ -n "$up" ] || { echo "Synapse did not start; see $dir/homeserver.log" >&2; exit 1; }
    umask 077
    # Setting up again keeps the accounts made the first time.
    if [ -s "$dir/mosaic-bot.password" ]; then
      echo "the bot @mosaic:$server_name exists (its password is in $dir/mosaic-bot.password)" >&2
    else
      bot_password="$(user mosaic)"
      printf '%s\n' "$bot_password" > "$dir/mosaic-bot.password"
    fi
    if human_password="$(admin=1 user "$human" 2>/dev/null)"; then :; else
      human_password="(unchanged: @$human:$server_name existed already)"
    fi
    cat <<TEXT
Synapse runs at $(base_url) (server name $server_name), data in $dir.
Your account: @$human:$server_name  password: $human_password  (log in with Element; change it there)
The bot's password is in $dir/mosaic-bot.password (mode 0600).

Paste into roster.yaml (connectors: and acl:), after creating a room and noting its id:
  connectors:
    - type: matrix
      homeserver: $(base_url)
      user: "@mosaic:$server_name"
      password: {file: $dir/mosaic-bot.password}
      rooms: ["!ROOMID:$server_name"]
  acl:
    - {connector: matrix, user: "@$human:$server_name", role: admin}
Stop it with: kill \$(cat $dir/homeserver.pid); to run it as a service: bash $here/homeserver.sh unit $dir
TEXT
    ;;
  unit)
    dir="$(cd "$dir" && pwd)"
    units="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user"
    mkdir -p "$units"
    case "$here$dir" in
      *[\|\&\\]*) echo "the paths must not contain | & or \\: $here, $dir" >&2; exit 1 ;;
    esac
    sed -e "s|@SCRIPT@|$here/homeserver.sh|" -e "s|@DIR@|$dir|" "$here/mosaic-synapse.service" \
      > "$units/mosaic-synapse.service"
    echo "wrote $units/mosaic-synapse.service; run: systemctl --user daemon-reload && systemctl --user enable --now mosaic-synapse"
    ;;
  *) echo "unknown command $cmd (init, run, user, setup, unit)" >&2; exit 2 ;;
esac

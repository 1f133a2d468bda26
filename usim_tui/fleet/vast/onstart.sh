#!/bin/bash
# usim-bootstrap: install usim, write the cell's config, train, and always end the container.
# Filled in by usim_tui/fleet/vast/onstart.py; secrets arrive as instance environment variables, never here.
set -uo pipefail
W="${USIM_WORKDIR:-/workspace}"
mkdir -p "$W" && cd "$W" || exit 90
RUN_DIR=__RUN_DIR__
echo "@usim {\"v\":1,\"kind\":\"bootstrap\",\"label\":\"__LABEL__\",\"t\":$(date +%s)}"

usim_stop_container() {
  # Vast gives every instance CONTAINER_ID and a per-instance CONTAINER_API_KEY: stop ourselves through
  # the API (storage bills until the controller destroys us; the GPU stops now).
  if [ -n "${CONTAINER_ID:-}" ] && [ -n "${CONTAINER_API_KEY:-}" ]; then   # python, not curl: an image may lack it
    python3 - <<'USIM_STOP' || echo "usim-bootstrap: stop request failed"
import json, os, urllib.request
url = os.environ.get("VAST_URL", "https://console.vast.ai") + "/api/v0/instances/" + os.environ["CONTAINER_ID"] + "/"
req = urllib.request.Request(url, data=json.dumps({"state": "stopped"}).encode(), method="PUT",
                             headers={"Authorization": "Bearer " + os.environ["CONTAINER_API_KEY"],
                                      "Content-Type": "application/json"})
urllib.request.urlopen(req, timeout=20).read()
USIM_STOP
  fi
  # On a real Vast container (and only there) end PID 1 as a last resort.
  if [ -n "${VAST_CONTAINERLABEL:-}" ] && [ -z "${USIM_NO_KILL_INIT:-}" ]; then
    sleep 5; kill -TERM 1 2>/dev/null || true
  fi
}
usim_on_exit() {
  code=$?
  echo "@usim {\"v\":1,\"kind\":\"exit\",\"code\":${code},\"t\":$(date +%s)}"
  usim_stop_container
}
trap usim_on_exit EXIT
trap 'exit 143' TERM INT

if [ -z "${USIM_PREINSTALLED:-}" ]; then
  python3 -m pip install -q --no-input __INSTALL__ || exit 91
fi
mkdir -p "$RUN_DIR" || exit 92
cat > "$RUN_DIR.config.yaml" <<'USIM_CONFIG_EOF'
__CONFIG__
USIM_CONFIG_EOF
timeout --signal=TERM --kill-after=60 __MAX_RUNTIME__ __TRAINER__ train \
  --config "$RUN_DIR.config.yaml" --run-dir "$RUN_DIR" 2>&1 | tee -a "$W/train.log"
exit "${PIPESTATUS[0]}"

#!/bin/bash
# usim host run: started detached over SSH by usim_tui/fleet/hosts/bring_up.py (bring_up), in the login's home;
# its stdout is $RUN_DIR/host.log. Trains (torchrun, one process per GPU, on a multi-GPU host), and on any exit
# appends an `exit` event to events.jsonl (and stdout): the status, and when it failed the last error line of
# the trainer's output (torchrun's ChildFailedError, a traceback's last line). The controller pulls the run
# dir and then destroys the instance; if it has not after USIM_STOP_AFTER_S (default 30 min: it is gone or
# cut off), the container stops itself, so the GPU stops billing (a stopped container has no SSH: results
# stay on its disk until destroyed). A resumed run (`--resume`) continues from the checkpoints in its run dir
# (pushed from the cell's last resume point, or left there by this host's run before it was outbid).
set -uo pipefail
# An SSH session does not see the image's environment: the onstart saved it (its python, CUDA's variables).
E="${USIM_HOME:-$HOME}/.usim/image.env"
[ -f "$E" ] && . "$E"
RUN_DIR=__RUN_DIR__
mkdir -p "$RUN_DIR" || exit 92
SINK="${USIM_CONTAINER_LOG:-/proc/1/fd/1}"   # the container log (vastai logs) carries the events too
[ -w "$SINK" ] || SINK=/dev/null
usim_event() {
  line="{\"v\":1,$1,\"t\":$(date +%s)}"
  echo "@usim $line" | tee -a "$SINK"
  echo "$line" >> "$RUN_DIR/events.jsonl"
}
usim_stop_container() {
  # with the image's own python (an image need not have curl): storage bills until the controller destroys
  # the instance; the GPU stops now
  C="${USIM_HOME:-$HOME}/.usim/container.env"
  [ -f "$C" ] && . "$C"
  if [ -n "${CONTAINER_ID:-}" ] && [ -n "${CONTAINER_API_KEY:-}" ]; then
    "${USIM_PY:-python3}" - <<'USIM_STOP' || echo "usim-host-run: stop request failed"
import json, os, urllib.request
url = os.environ.get("VAST_URL", "https://console.vast.ai") + "/api/v0/instances/" + os.environ["CONTAINER_ID"] + "/"
req = urllib.request.Request(url, data=json.dumps({"state": "stopped"}).encode(), method="PUT",
                             headers={"Authorization": "Bearer " + os.environ["CONTAINER_API_KEY"],
                                      "Content-Type": "application/json"})
urllib.request.urlopen(req, timeout=20).read()
USIM_STOP
  fi
}
usim_last_error() {   # the output's last error line, as JSON string content (printable ASCII, quotes escaped)
  grep -v '^@usim ' "$RUN_DIR/host.log" 2>/dev/null | grep -E '(Error|Exception|Interrupt)\b|Error:' | tail -n 1 \
    | LC_ALL=C tr -cd '\040-\176' | cut -c1-300 | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'
}
usim_on_exit() {
  code=$?
  why=""
  [ "$code" -ne 0 ] && why=",\"error\":\"$(usim_last_error)\""
  usim_event "\"kind\":\"exit\",\"code\":${code}${why}"
  if [ -z "${USIM_NO_STOP:-}" ]; then
    ( trap '' HUP; sleep "${USIM_STOP_AFTER_S:-1800}"; usim_stop_container ) >/dev/null 2>&1 < /dev/null &
  fi
}
trap usim_on_exit EXIT
trap 'exit 143' TERM INT
timeout --signal=TERM --kill-after=60 __MAX_RUNTIME__ __TRAINER__ train \
  --config "$RUN_DIR.config.yaml" --run-dir "$RUN_DIR"__RESUME__ 2>&1 | tee -a "$SINK"
exit "${PIPESTATUS[0]}"

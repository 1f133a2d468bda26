"""A stand-in for `usim-core train` that speaks the @usim protocol: FAKE_MODE=done|crash|hang|silent."""
import json
import os
import sys
import time


def emit(kind, **f):
    print("@usim " + json.dumps({"v": 1, "kind": kind, "t": time.time(), **f}), flush=True)


mode = os.environ.get("FAKE_MODE", "done")
if mode == "silent":
    time.sleep(60)
emit("started", threads=os.environ.get("USIM_THREADS"))
for step in range(1, 6):
    emit("metric", stage="codec", step=step, metrics={"loss": 1.0 / step})
    time.sleep(float(os.environ.get("FAKE_STEP_S", "0.05")))
if mode == "crash":
    print("Traceback (most recent call last):\nImportError: cannot import name 'LazyLinear'", file=sys.stderr)
    sys.exit(1)
if mode == "hang":
    time.sleep(600)
emit("eval", name="small", metrics={"nrmse_frame": 0.19, "nrmse_rollout": 0.2, "nrmse_one_step": 0.05})
emit("done")

"""Runs LocalStack core on the host for Aphex's tests (started by `cargo xtask`).

Two changes from `python -m localstack.runtime.main`:
- no one-time DNS probe of s3.<LOCALSTACK_HOST> (the tests use loopback only);
- a watchdog: when the process that started us (APHEX_EMULATOR_PARENT_PID)
  is gone, even killed with SIGKILL, we stop too, so no emulator is left behind.
"""
import os
import runpy
import signal
import sys
import threading
import time

import localstack.utils.aws.aws_stack as aws_stack

aws_stack.CACHE_S3_HOSTNAME_DNS_STATUS = False  # skip socket.gethostbyname("s3.<host>")


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            # SIGTERM lets LocalStack shut down cleanly; hard exit if it does not in 10 s.
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)
            os._exit(1)
        time.sleep(1)


_parent = os.environ.get("APHEX_EMULATOR_PARENT_PID")
if _parent:
    threading.Thread(target=_watch_parent, args=(int(_parent),), daemon=True).start()

sys.argv = ["localstack.runtime.main"]
runpy.run_module("localstack.runtime.main", run_name="__main__")

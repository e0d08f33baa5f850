"""A browser script (tests/browser/*.mjs) run by node for an e2e test: its
output (stdout and stderr together) read by a thread into a log file, a list
and a queue of lines the test waits on; stdin for the test's answers. The one
runner test_chat_page.py and test_dashboard_page.py share.
"""

import queue
import subprocess
import threading
import time


class NodeScript:
    def __init__(self, argv, cwd, env, log_path):
        self.log = open(log_path, "w")
        self.lines = queue.Queue()
        self.output = []
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.output.append(line)
            self.log.write(line)
            self.log.flush()
            self.lines.put(line)
        self.lines.put(None)

    def next_line(self, pick, deadline):
        """The first line for which pick(line) is not None, that value; None when the
        script ended or the deadline passed first."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                return None
            got = pick(line)
            if got is not None:
                return got

    def write(self, text):
        """A line to the script's stdin (False when it is gone)."""
        try:
            self.proc.stdin.write(text + "\n")
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def finish(self, timeout):
        """Close stdin, wait for the exit (killed by its PID after timeout); its code."""
        try:
            self.proc.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            pass
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # by its PID (Popen)
            rc = self.proc.wait(timeout=10)
        self.reader.join(timeout=10)
        self.log.close()
        return rc

    def text(self):
        return "".join(self.output)

# A long task, to abort: it prints a line a second for ten minutes.
import time

for i in range(600):
    print("still working, step", i, flush=True)
    time.sleep(1)

# A task that fails: it exits with status 3, and the task is marked failed.
import sys

print("About to fail on purpose")
sys.exit(3)

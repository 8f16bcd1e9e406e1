# A hello world task: prints where it runs and finishes.
import os
import platform

print("Hello from task", os.environ.get("CLEARML_TASK_ID"))
print("Python", platform.python_version(), "on worker", os.environ.get("CLEARML_WORKER_ID"))

# A task with a requirement: the agent builds (or reuses) a virtualenv with it.
import six

print("six", six.__version__, "is installed in the task's environment")

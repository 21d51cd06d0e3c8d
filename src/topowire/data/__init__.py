"""Data: the Reber grammar, MNIST (IDX reader, bundled subset, views), the adding problem,
and the tasks built from them (:mod:`topowire.data.tasks`, a registry of plug-ins)."""

from topowire.data.adding import make_adding
from topowire.data.mnist import load_mnist, mnist_view, read_idx
from topowire.data.tasks import TASKS, Task, TaskRef, TaskSpec, make_task, register_task
from topowire.data.tasks.reber import encode_strings

__all__ = ["TASKS", "Task", "TaskSpec", "TaskRef", "make_task", "register_task", "encode_strings", "load_mnist",
           "mnist_view", "read_idx", "make_adding"]

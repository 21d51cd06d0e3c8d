"""Data: the Reber grammar tasks, MNIST (IDX reader, bundled subset, views), the adding problem."""

from topowire.data.adding import make_adding
from topowire.data.mnist import load_mnist, mnist_view, read_idx
from topowire.data.tasks import TASKS, Task, encode_strings, make_task

__all__ = ["TASKS", "Task", "make_task", "encode_strings", "load_mnist", "mnist_view", "read_idx", "make_adding"]

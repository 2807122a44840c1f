"""Built-in plugin: MNIST, Fashion-MNIST, a shipped Fashion-MNIST slice, and image folders."""

from toolkit.hookspecs import hookimpl

from .options import FolderOptions, MiniOptions, TorchvisionOptions


@hookimpl
def register_datasets(register):
    register("mnist", "toolkit_data.idx:load_mnist", options=TorchvisionOptions,
             description="MNIST digits, 28x28 grey; attribute 'digit' (0-9)")
    register("fashion-mnist", "toolkit_data.idx:load_fashion_mnist", options=TorchvisionOptions,
             description="Fashion-MNIST, 28x28 grey; attribute 'item' (10 kinds of clothing)")
    register("fashion-mnist-mini", "toolkit_data.idx:load_fashion_mnist_mini", options=MiniOptions,
             description="a 6,000 + 1,000 image slice of Fashion-MNIST that ships with the toolkit")
    register("image-folder", "toolkit_data.folder:load", options=FolderOptions,
             description="your own images: a folder, plus an optional CSV of (partial) labels")

"""Built-in plugin: MNIST, Fashion-MNIST, a shipped Fashion-MNIST slice, SVHN, CelebA, and image folders."""

from toolkit.hookspecs import hookimpl

from .options import CelebaOptions, FolderOptions, MiniOptions, SvhnOptions, TorchvisionOptions


@hookimpl
def register_datasets(register):
    register("mnist", "toolkit_data.idx:load_mnist", options=TorchvisionOptions,
             description="MNIST digits, 28x28 grey; attribute 'digit' (0-9)")
    register("fashion-mnist", "toolkit_data.idx:load_fashion_mnist", options=TorchvisionOptions,
             description="Fashion-MNIST, 28x28 grey; attribute 'item' (10 kinds of clothing)")
    register("fashion-mnist-mini", "toolkit_data.idx:load_fashion_mnist_mini", options=MiniOptions,
             description="a 6,000 + 1,000 image slice of Fashion-MNIST that ships with the toolkit")
    register("svhn", "toolkit_data.svhn:load", options=SvhnOptions,
             description="SVHN house-number digits, 32x32 colour; attribute 'digit' (0-9); needs scipy")
    register("celeba", "toolkit_data.celeba:load", options=CelebaOptions, input_crop="toolkit_data.celeba:input_crop",
             description="CelebA faces, cropped and resized (32x32 colour); its 40 attributes, each no/yes")
    register("image-folder", "toolkit_data.folder:load", options=FolderOptions,
             description="your own images: a folder, plus an optional CSV of (partial) labels")

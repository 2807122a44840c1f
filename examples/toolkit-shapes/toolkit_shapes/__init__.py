"""Example plugin: dataset ``shapes``, network family ``mlp28``, loss ``l1-rec``, command ``draw-shape``.

Registration is cheap: the factories are ``"module:attr"`` strings imported when a thing is
built, and only the (torch-free) options models are imported here.
"""

from toolkit.hookspecs import hookimpl

from .options import L1RecOptions, Mlp28Options, ShapesOptions


@hookimpl
def register_datasets(register):
    register("shapes", "toolkit_shapes.data:load", options=ShapesOptions,
             description="28x28 grey circles, squares and triangles; attributes 'shape' and 'size' (partly unlabeled)")


@hookimpl
def register_networks(register):
    register("mlp28", "toolkit_shapes.networks:build", options=Mlp28Options, image_shape=(1, 28, 28),
             description="fully connected G, E and D for 28x28 images (small and fast on a CPU)")


@hookimpl
def register_losses(register):
    register("l1-rec", "toolkit_shapes.losses:L1Reconstruction", options=L1RecOptions,
             description="|x - G(E(x))| on real images: a sharper alternative to 'rec'")


@hookimpl
def register_commands(cli):
    from .commands import draw_shape

    cli.command("draw-shape")(draw_shape)

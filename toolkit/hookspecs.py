"""The plugin surface: one hook per kind of thing a plugin can add.

Each hook hands the plugin a ``register`` callback (the pattern of ``llm``); the core owns
de-duplication and error messages. Registration must be cheap: a factory may be a callable
or a ``"module:attribute"`` string that is imported only when the thing is built.
"""

import pluggy

hookspec = pluggy.HookspecMarker("toolkit")
hookimpl = pluggy.HookimplMarker("toolkit")


@hookspec
def register_datasets(register):
    """Register datasets: ``register(name, factory, options=Model, description=...)``.

    ``factory(options, split)`` returns a :class:`toolkit.data.ImageSet`.
    """


@hookspec
def register_networks(register):
    """Register network families: ``register(name, factory, options=Model, description=...)``.

    ``factory(spec, image_shape, options)`` returns a :class:`toolkit.networks.Networks`.
    """


@hookspec
def register_losses(register):
    """Register loss terms: ``register(name, factory, options=Model, description=...)``.

    ``factory(spec, options)`` returns a :class:`toolkit.losses.LossTerm`.
    """


@hookspec
def register_classifiers(register):
    """Register image classifiers: ``register(name, factory, options=Model, description=...)``.

    ``factory(image_shape, num_classes, options)`` returns an ``nn.Module`` mapping images
    ``(B, C, H, W)`` in [0, 1] to logits ``(B, num_classes)`` (see :mod:`toolkit.classifier`).
    """


@hookspec
def register_commands(cli):
    """Add commands to the ``toolkit`` typer application ``cli``."""

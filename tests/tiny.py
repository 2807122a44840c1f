"""A tiny recipe for fast CPU tests: the shipped Fashion-MNIST slice, narrow networks."""

import copy

TINY = {
    "name": "tiny",
    "seed": 0,
    "data": {"dataset": "fashion-mnist-mini", "labels": 50, "labeled_ramp": 4},
    "latent": {"u": {"size": 4}, "variables": {"item": {"kind": "categorical", "label": "item"},
                                              "c1": {"kind": "continuous"}}},
    "model": {"network": "paper28", "options": {"width": 0.125}},
    "losses": {"sup": {"weight": 10}, "rec": {"weight": 1}, "info": {"weight": 1, "ramp": 4},
               "adv": {"weight": 1, "ramp": 4}},
    "optim": {"batch_size": 8},
    "train": {"steps": 4, "log_every": 2, "sample_every": 2, "checkpoint_every": 2, "device": "cpu"},
}


def tiny_recipe(**train):
    """The tiny recipe as a resolved :class:`toolkit.recipe.Recipe`, with train.* overrides."""
    from toolkit.plugins import resolve
    from toolkit.recipe import parse_recipe

    data = copy.deepcopy(TINY)
    data["train"].update(train)
    return resolve(parse_recipe(data))


def tiny_yaml(path, **train):
    import yaml

    data = copy.deepcopy(TINY)
    data["train"].update(train)
    path.write_text(yaml.safe_dump(data))
    return path

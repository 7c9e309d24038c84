"""`uvs train`: every option of the original trainers, recipes as presets."""

from __future__ import annotations

import os

import click

from uvs.cli.common import data_dir_option, json_option, print_json, quiet_option


@click.command()
@click.option("--recipe", type=click.Choice(["vse", "order", "symmetric"]), default=None,
              help="Preset of an original trainer (default vse); explicit options win.")
@click.option("--data", default=None, help="Data set name: f8k, f30k, coco, sample, ...")
@data_dir_option
@click.option("--margin", type=float, default=None, help="Ranking-loss margin.")
@click.option("--dim", type=int, default=None, help="Embedding (and GRU state) size.")
@click.option("--dim-image", type=int, default=None, help="Image feature width.")
@click.option("--dim-word", type=int, default=None, help="Word vector size.")
@click.option("--encoder", type=click.Choice(["gru", "bow"]), default=None)
@click.option("--max-epochs", type=int, default=None)
@click.option("--disp-freq", type=int, default=None, help="Updates between progress lines.")
@click.option("--decay-c", type=float, default=None, help="Weight decay.")
@click.option("--grad-clip", type=float, default=None, help="Gradient norm limit.")
@click.option("--maxlen-w", type=int, default=None, help="Drop captions this long or longer.")
@click.option("--optimizer", type=click.Choice(["adam", "adam_textbook"]), default=None,
              help="adam: as released (its bias correction included); adam_textbook: Kingma & Ba.")
@click.option("--batch-size", type=int, default=None)
@click.option("--saveto", type=click.Path(dir_okay=False), default=None,
              help="Best model path (.npz); default models/DATA.npz.")
@click.option("--valid-freq", type=int, default=None, help="Updates between dev evaluations.")
@click.option("--lrate", type=float, default=None, help="Learning rate.")
@click.option("--reload", "reload_", is_flag=True, help="Resume from SAVETO's last checkpoint.")
@click.option("--method", type=click.Choice(["cosine", "order"]), default=None)
@click.option("--abs/--no-abs", "abs_", default=None, help="Absolute values of embeddings.")
@click.option("--max-violation", is_flag=True, default=None, help="Hard negatives (VSE++).")
@click.option("--seed", type=int, default=None, help="Random seed (default 1234).")
@click.option("--mode", type=click.Choice(["CVM", "NUMBA", "JAX", "FAST_RUN"],
                                          case_sensitive=False), default=None,
              help="PyTensor backend (default: $UVS_MODE, else the fastest tested).")
@json_option
@quiet_option
def train(recipe, data, data_dir, margin, dim, dim_image, dim_word, encoder, max_epochs,
          disp_freq, decay_c, grad_clip, maxlen_w, optimizer, batch_size, saveto, valid_freq,
          lrate, reload_, method, abs_, max_violation, seed, mode, as_json, quiet):
    """Train a model; the best one on dev is saved at SAVETO, with a last checkpoint and log."""
    if mode:
        os.environ["UVS_MODE"] = mode.upper()
    from uvs.train import trainer

    result = trainer(
        quiet=quiet, recipe=recipe, data=data, data_dir=data_dir, margin=margin, dim=dim,
        dim_image=dim_image, dim_word=dim_word, encoder=encoder, max_epochs=max_epochs,
        dispFreq=disp_freq, decay_c=decay_c, grad_clip=grad_clip, maxlen_w=maxlen_w,
        optimizer=optimizer, batch_size=batch_size, saveto=saveto, validFreq=valid_freq,
        lrate=lrate, reload_=reload_ or None, method=method, abs=abs_,
        max_violation=max_violation, seed=seed)
    if as_json:
        print_json(result)
    else:
        click.echo(f"best dev rsum {result['best_rsum']:.1f} after {result['updates']} "
                   f"updates; model: {result['saveto']}")

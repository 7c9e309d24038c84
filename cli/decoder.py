"""`uvs decoder train`, `uvs caption`, `uvs evalcap`: generating sentences from the joint space."""

from __future__ import annotations

import os

import click
import numpy as np

from uvs.cli.common import (
    check_store_inputs,
    cluster_options,
    cluster_where,
    data_dir_option,
    json_option,
    print_job,
    print_json,
    progress_lines,
    quiet_option,
    trainer_command,
)
from uvs.cluster import jobs
from uvs.cluster.tasks import caption_lines, caption_rows
from uvs.datasets import load_split, split_files
from uvs.decoding import tools
from uvs.decoding.evaluation import captions_text
from uvs.decoding.evaluation import evalcap as run
from uvs.decoding.options import OPTIONS
from uvs.decoding.train import trainer
from uvs.extras import require
from uvs.features import read_image_features
from uvs.fileio import atomic_path, check_not_input, write_text
from uvs.mnlm import evaluation
from uvs.modelfile import locate, pickled_instance, read_model, shown
from uvs.photos import check_photo
from uvs.progress import progress


@click.group()
def decoder():
    """Decoders: language models that turn a vector into a sentence."""


def cost_line(result: dict) -> str:
    """The decoder's result in one line: its best dev cost per word."""
    return (f"best dev cost/word {result['best_dev_cost_per_word']:.4f} after "
            f"{result['updates']} updates; decoder: {result['saveto']}")


decoder.add_command(trainer_command(OPTIONS, trainer, ["uvs", "decoder", "train"], """Train a
decoder on a data set's captions; the best on dev is saved at SAVETO, with a last checkpoint
and log.

Ctrl-C or SIGTERM writes the last checkpoint and prints the command that resumes it.
""", line=cost_line))


@click.command()
@click.argument("decoder_path", metavar="DECODER", type=click.Path(dir_okay=False))
@click.option("--model", "vse_model", type=click.Path(dir_okay=False),
              help="uvs model of the joint space (default: the one the decoder was trained on).")
@click.option("--dictionary", type=click.Path(dir_okay=False),
              help="Dictionary file of a released skip-thoughts decoder.")
@click.option("--image", type=click.Path(dir_okay=False), help="A photo ([images] extra).")
@click.option("--image-features", type=click.Path(),
              help="A .npy (or .zarr store) of CNN feature rows ...")
@click.option("--row", type=click.IntRange(0), default=None,
              help="... and the row of it [default: 0].")
@click.option("--text", help="A sentence: decode its own vector (reconstruction).")
@click.option("--minus", multiple=True, help="Word(s) to subtract in the joint space.")
@click.option("--plus", multiple=True, help="Word(s) to add in the joint space.")
@click.option("--beam", type=click.IntRange(1), default=5, show_default=True,
              help="Beam width.")
@click.option("--sample", "stochastic", is_flag=True, help="Sample instead of beam search.")
@click.option("-n", type=click.IntRange(1), default=1, show_default=True,
              help="Sentences to show.")
@click.option("--maxlen", type=click.IntRange(1), default=30, show_default=True)
@click.option("--use-unk", is_flag=True, help="Allow the UNK token.")
@click.option("--weights", default="torchvision", show_default=True,
              help="VGG-19 weights for --image (torchvision or a Lasagne vgg19.pkl).")
@click.option("--crops", type=click.Choice(["1", "10"]), default="1", show_default=True)
@click.option("--device", default=None, help="torch device for --image.")
@click.option("--seed", type=int, default=1234, show_default=True, help="Sampling seed.")
@click.option("--template", default=None,
              help='SC-NLM models: the tags to follow, e.g. "DT NN VBZ IN DT NN ." (default: '
                   "the structures of the nearest training captions).")
@click.option("--data", default=None, help="SC-NLM: the training data of its default "
              "templates (default: the model's own).")
@data_dir_option
@click.option("--rows", "rows_text", default=None, metavar="all|A:B",
              help="With --image-features: caption every row (or rows A to B-1) into -o "
                   "CAPTIONS.jsonl, beam search, one JSON line per row.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="With --rows: the JSON-lines file to write.")
@cluster_options
@json_option
@quiet_option
def caption(decoder_path, vse_model, dictionary, image, image_features, row, text, minus, plus,
            beam, stochastic, n, maxlen, use_unk, weights, crops, device, seed, template, data,
            data_dir, rows_text, output, cluster, workers, shard, chunk_rows, as_json, quiet):
    """Generate sentences for a photo, a feature row, a sentence, or photo − word + word.

    DECODER is a GRU decoder (uvs decoder train) or a log-bilinear model (uvs mnlm train:
    MLBL, MLBL-F, SC-NLM; beam search as the original's, at most MAXLEN - 1 words).
    """
    with progress_lines(quiet):
        _caption(decoder_path, vse_model, dictionary, image, image_features, row, text, minus,
                 plus, beam, stochastic, n, maxlen, use_unk, weights, crops, device, seed,
                 template, data, data_dir, rows_text, output, cluster, workers, shard,
                 chunk_rows, as_json, quiet)


def _caption(decoder_path, vse_model, dictionary, image, image_features, row, text, minus, plus,
             beam, stochastic, n, maxlen, use_unk, weights, crops, device, seed, template, data,
             data_dir, rows_text, output, cluster, workers, shard, chunk_rows, as_json, quiet):
    given = [q for q in (image, image_features, text) if q is not None]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --image, --image-features, --text")
    if _is_mnlm(decoder_path):
        return _caption_mnlm(decoder_path, vse_model, image, image_features, row, text, minus,
                             plus, beam, n, maxlen, weights, crops, device, template, data,
                             data_dir, as_json)
    if template is not None:
        raise click.UsageError("--template is for SC-NLM models")
    if n > beam and not stochastic:
        raise click.UsageError(f"-n {n} is more than the beam holds (--beam {beam})")
    check_store_inputs(image_features)
    if rows_text is not None or output or cluster or workers or shard:
        if rows_text is None or not output or not image_features or stochastic or minus or plus:
            raise click.UsageError("many rows: --image-features FEATS --rows all|A:B -o "
                                   "CAPTIONS.jsonl (beam search, no --minus/--plus)")
        where = cluster_where(cluster, workers, shard, output,
                              store=bool(cluster or workers or shard))
        check_not_input(output, (decoder_path, dictionary, vse_model, image_features))
        options = {"beam": beam, "n": n, "maxlen": maxlen, "use_unk": use_unk, "seed": seed}
        return _caption_rows(decoder_path, dictionary, vse_model, image_features, rows_text,
                             output, options, where, chunk_rows, as_json, quiet)
    if row is not None and image_features is None:
        raise click.UsageError("--row picks a row of --image-features")
    row = row or 0
    if image is not None:
        check_photo(image)  # a typo is not a missing extra
        require("images", "--image")
    dec = tools.load_model(decoder_path, dictionary, seed=seed)
    vse = tools.load_encoder(dec, vse_model)
    feats, where = tools.query_features(dec, vse, image, image_features, row, weights,
                                        int(crops), device)
    c = tools.context(dec, vse, feats, text, minus, plus, where)
    if stochastic:
        results = tools.sample_sentences(dec, c, n=n, maxlen=maxlen, use_unk=use_unk)
    else:
        results = tools.generate(dec, c, beam_width=beam, use_unk=use_unk, maxlen=maxlen,
                                 n=n)[0]
    if as_json:
        print_json({"decoder": decoder_path, "mode": "sample" if stochastic else "beam",
                    "beam": None if stochastic else beam,
                    "sentences": [{"text": t, "score": s} for t, s in results]})
        return

    label = "prob. sum" if stochastic else "cost"
    for i, (t, s) in enumerate(results, 1):
        click.echo(f"{i:>2}  {label} {s:8.3f}  {shown(t)}")


def _caption_rows(decoder_path, dictionary, vse_model, features, rows_text, output, options,
                  where, chunk_rows, as_json, quiet):
    """`uvs caption --rows`: here in chunks, or as a job of chunks (resumable, on a cluster)."""

    if where is not None:
        with progress_lines(quiet):
            setup = jobs.caption_setup(decoder_path, dictionary, vse_model)
            count = len(_features_of(features, setup["dim_image"])[1])
            store, spec = jobs.captions_job(output, setup, features,
                                            jobs.parse_rows(rows_text, count, features),
                                            options, chunk_rows)
            summary = jobs.run_job(store, spec, where, quiet, output=output)
        return print_job(summary, as_json, "captioned rows")

    dec = tools.load_model(decoder_path, dictionary, seed=options["seed"])
    vse = tools.load_encoder(dec, vse_model)
    want = vse["options"]["dim_image"] if vse is not None else dec["options"]["dimctx"]
    feats, names = _features_of(features, want)
    a, b = jobs.parse_rows(rows_text, len(names), features)
    step = chunk_rows or jobs.CHUNK_ROWS["captions"]
    with progress(b - a, "rows", not quiet) as bar, atomic_path(output) as tmp, \
            open(tmp, "w", encoding="utf-8") as out:
        for start in range(a, b, step):
            stop = min(start + step, b)
            found = caption_rows(dec, vse, feats[start:stop], options, features)
            out.write(caption_lines(start, names[start:stop], found))
            bar.update(stop - start)
    summary = {"output": output, "rows": b - a, "first_row": a}
    if as_json:
        print_json(summary)
    else:
        click.echo(f"wrote {output}: captions of {b - a} rows")


def _features_of(path, want):
    return read_image_features(path, want)


@click.command()
@click.argument("decoder_path", metavar="DECODER", type=click.Path(dir_okay=False))
@click.option("--model", "vse_model", type=click.Path(dir_okay=False),
              help="uvs model of the joint space (default: the one the decoder was trained on).")
@click.option("--dictionary", type=click.Path(dir_okay=False))
@click.option("--data", default=None, help="Data set (default: the decoder's own).")
@data_dir_option
@click.option("--split", type=click.Choice(["dev", "test"]), default="test", show_default=True)
@click.option("--beam", type=click.IntRange(1), default=3, show_default=True)
@click.option("--maxlen", type=click.IntRange(1), default=30, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Also write the generated captions here: one a line (control characters "
                   "spelled out, as \\r), or JSON lines {image, caption} for a .jsonl file.")
@json_option
@quiet_option
def evalcap(decoder_path, vse_model, dictionary, data, data_dir, split, beam, maxlen, output,
            as_json, quiet):
    """Caption every image of a split and score against its references (BLEU, METEOR,
    ROUGE-L, CIDEr) with the decoder's perplexity."""

    require("captions", "uvs evalcap")  # before the slow generation
    if output:
        check_not_input(output, (decoder_path, vse_model, dictionary))
    if _is_mnlm(decoder_path):
        return _evalcap_mnlm(decoder_path, vse_model, data, data_dir, split, beam, maxlen,
                             output, as_json, quiet)
    dec = tools.load_model(decoder_path, dictionary)
    data = data or dec["options"].get("data")
    if not data:
        raise click.UsageError("give --data")
    if output:
        trained_on = dec["options"].get("model")
        check_not_input(output, (trained_on if isinstance(trained_on, str) else None,
                                 *split_files(data, split, data_dir, dec["options"].get("cnn"))))
    vse = tools.load_encoder(dec, vse_model)
    with progress_lines(quiet):
        res = run(dec, vse, data=data, split=split, data_dir=data_dir, beam_width=beam,
                  maxlen=maxlen, cnn=dec["options"].get("cnn"))
    if output:
        write_text(output, captions_text(res["captions"], output))
    _print_scores(res, decoder_path, data, split, beam, as_json, quiet,
                  f"({res['cost_per_word']:.4f} nats/word over {res['words']} words)")


def _print_scores(res: dict, decoder_path: str, data: str, split: str, beam: int,
                  as_json: bool, quiet: bool, perplexity_note: str) -> None:
    """evalcap's result: notes on stderr, then the metrics table (or JSON)."""
    if not quiet:
        for note in res["notes"]:
            click.echo(note, err=True)
    if as_json:
        print_json({k: v for k, v in res.items() if k not in ("captions", "references")}
                   | {"decoder": decoder_path, "data": data, "split": split, "beam": beam})
        return
    m = res["metrics"]
    names = [k for k in ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider")
             if k in m]
    click.echo("  ".join(f"{k:>7}" for k in names))
    click.echo("  ".join(f"{100 * m[k]:7.1f}" for k in names))
    click.echo(f"{res['images']} images, beam {beam}; perplexity {res['perplexity']:.2f} "
               + perplexity_note)


def _is_mnlm(path: str) -> bool:
    """Whether PATH holds a log-bilinear model (either layout)."""
    if os.path.isfile(path) and pickled_instance(path):
        return True

    try:
        layout, npz, _ = locate(path)
        if layout != "uvs":
            return False
        return read_model(npz).kind in ("mlbl", "mlblf", "scnlm")
    except Exception:  # noqa: BLE001 - the decoder reader says what is wrong
        return False


def _caption_mnlm(path, vse_model, image, image_features, row, text, minus, plus, beam, n,
                  maxlen, weights, crops, device, template, data, data_dir, as_json):
    net, vse = evaluation.load(path, vse_model)
    tags = getattr(net, "tag_dict", None)
    if n > beam and (not tags or template is not None):
        raise click.UsageError(f"-n {n} is more than the beam holds (--beam {beam})")
    if maxlen < 3:
        raise click.UsageError("--maxlen must be at least 3 for a log-bilinear model")
    if template is not None and not tags:
        raise click.UsageError("--template is for SC-NLM models")
    vec = evaluation.query_vector(net, vse, path, image, image_features, row or 0, text,
                                  minus, plus, weights, int(crops), device)
    templates, train = None, None
    if tags and template is not None:
        templates = [[evaluation.parse_template(net, template, maxlen)]]
    elif tags:
        data = data or net.options.get("data")
        if not data:
            raise click.UsageError("give --template, or --data for the default templates")
        train = load_split(data, "train", data_dir or net.options.get("data_dir"))
    cands = evaluation.captions_for(net, vse, np.asarray([vec], dtype=np.float32), k=beam,
                                    maxlen=maxlen, templates=templates, train=train)[0][:n]
    if as_json:
        print_json({"decoder": path, "mode": "beam", "beam": beam, "sentences": cands})
        return
    for i, c in enumerate(cands, 1):
        shown = f"  [{c['template']}]" if c.get("template") else ""
        score = f"  score {c['score']:.3f}" if "score" in c else ""
        click.echo(f"{i:>2}{score}  {c['text']}{shown}")


def _evalcap_mnlm(path, vse_model, data, data_dir, split, beam, maxlen, output, as_json,
                  quiet):
    net, vse = evaluation.load(path, vse_model)
    data = data or net.options.get("data")
    if not data:
        raise click.UsageError("give --data")
    res = evaluation.evalcap(net, vse, data, split, data_dir or net.options.get("data_dir"),
                             k=beam, maxlen=max(maxlen, 3), cnn=net.options.get("cnn"))
    if output:
        write_text(output, captions_text(res["captions"], output))
    _print_scores(res, path, data, split, beam, as_json, quiet,
                  "(log2, the original's, over every n-gram)")


def register(group: click.Group) -> None:
    for command in (decoder, caption, evalcap):
        group.add_command(command)

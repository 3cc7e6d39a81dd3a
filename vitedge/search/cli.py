"""``vitedge index build`` and ``vitedge search``: their options and handlers (cli.py registers them)."""

from __future__ import annotations

import argparse
import json
import os

from vitedge.errors import UsageError
from vitedge.search.faiss_index import KINDS, METRICS, IndexParams


def add_search_commands(commands) -> None:
    """Add ``index`` (``index build``) and ``search`` to the CLI's subparsers."""
    index = commands.add_parser("index", help="build a FAISS similarity index of embeddings (pip install 'vitedge[search]')")
    actions = index.add_subparsers(dest="index_command", metavar="ACTION", parser_class=type(index))
    build = actions.add_parser("build", help="index the embeddings of vitedge embed --out DIR")
    build.add_argument("embeddings", nargs="+", metavar="EMBEDDINGS",
                       help="job folder(s) of vitedge embed --out DIR (one artifact), or .npy files of vitedge embed")
    build.add_argument("--out", required=True, metavar="INDEX", help="the index folder to write")
    build.add_argument("--kind", choices=KINDS, default="flat",
                       help="flat (exact, the default), hnsw (graph, fast, near exact), ivf-pq (compressed, for large sets)")
    build.add_argument("--metric", choices=METRICS, default="cosine", help="cosine (default) or l2")
    build.add_argument("--hnsw-m", type=int, default=IndexParams.hnsw_m, metavar="M", help="hnsw: links per node")
    build.add_argument("--nlist", type=int, metavar="N", help="ivf-pq: clusters (default 4 x sqrt(vectors))")
    build.add_argument("--pq-m", type=int, metavar="M", help="ivf-pq: sub-vectors per code, a byte each (default: dimension / 4)")
    build.add_argument("--overwrite", action="store_true", help="replace an existing index at --out")

    search = commands.add_parser("search", help="find the nearest images in an index, by image or by vector")
    search.add_argument("index", metavar="INDEX")
    search.add_argument("--image", nargs="+", metavar="IMG", help="query image(s), embedded with --artifact")
    search.add_argument("--artifact", metavar="ART", help="with --image: the artifact that made the index's vectors")
    search.add_argument("--vector", metavar="FILE", help="query vector(s): a .npy file, (D,) or (N, D)")
    search.add_argument("--k", type=int, default=10, help="neighbours per query (default 10)")
    search.add_argument("--nprobe", type=int, help="ivf-pq: clusters searched (more: better recall, slower)")
    search.add_argument("--ef-search", type=int, help="hnsw: candidates searched (more: better recall, slower)")
    search.add_argument("--json", action="store_true", help="one JSON list: {query, results: [{rank, path, score}]}")


def cmd_index(args: argparse.Namespace) -> int:
    from vitedge.search.index import build_index

    if args.index_command != "build":
        raise UsageError("vitedge index needs an action: build", hint="see vitedge index build --help")
    params = IndexParams(kind=args.kind, metric=args.metric, hnsw_m=args.hnsw_m, nlist=args.nlist, pq_m=args.pq_m)
    index = build_index(args.embeddings, args.out, params=params, overwrite=args.overwrite)
    settings = ", ".join(f"{key} {value}" for key, value in index.meta["params"].items() if key != "kind")
    print(f"wrote {index.folder}: {len(index)} vectors of {index.dimension} dimensions, {index.params.kind} ({settings}), "
          f"from the {index.artifact.get('format')} {index.artifact.get('precision')} artifact "
          f"(sha256 {index.artifact['sha256'][:12]})")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from vitedge.search.index import VectorIndex
    from vitedge.search.inputs import read_query_vectors

    if bool(args.image) == bool(args.vector):
        raise UsageError("search needs --image IMG (with --artifact ART) or --vector FILE, one of them")
    if args.image and not args.artifact:
        raise UsageError("--image needs --artifact ART, the artifact that made the index's vectors")
    index = VectorIndex.open(args.index)
    options = {"nprobe": args.nprobe, "ef_search": args.ef_search}
    if args.image:
        from vitedge.runtime import Classifier

        names = [os.fsdecode(image) for image in args.image]
        results = index.search_images(names, Classifier.open(args.artifact), k=args.k, **options)
    else:
        vectors, sha, names = read_query_vectors(args.vector)
        index.check_artifact(sha, what=f"{args.vector}")
        results = index.search(vectors, k=args.k, **options)
    if args.json:
        print(json.dumps([{"query": name, "results": [hit.to_dict() for hit in hits]} for name, hits in zip(names, results)],
                         indent=2))
        return 0
    for name, hits in zip(names, results):
        print(name)
        for hit in hits:
            print(f"  {hit.rank:>3}  {hit.score:.4f}  {hit.path}")
    return 0

"""Compression: the whole instance on disk is at most 0.8x the raw corpus bytes."""
from conftest import tree_bytes, tree_listing


def test_on_disk_size(corpus, corpus_instance):
    apparent, allocated = tree_bytes(corpus_instance.base)
    limit = 0.8 * corpus.total_bytes
    if apparent > limit:
        listing = sorted(tree_listing(corpus_instance.base).items(), key=lambda kv: -kv[1])[:15]
        raise AssertionError(
            "base dir holds %d bytes (%.2fx the corpus's %d raw bytes; allocated %d), limit 0.8x; "
            "largest files: %r" % (apparent, apparent / corpus.total_bytes, corpus.total_bytes,
                                   allocated, listing))

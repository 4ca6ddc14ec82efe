"""What rundeps reads its ELF files from.

* :mod:`.walk` -- folders of a root file system walked, their ELF files read
  (:func:`~rundeps.inputs.walk.scan`);
* :mod:`.forked` -- the walk's symbol facts read on two cores (a forked
  child reads half);
* :mod:`.filecache` -- the per-file cache that lets a warm walk skip
  unchanged files;
* :mod:`.wheel` -- wheels read straight from their zip (:mod:`.wheeltags`
  their names and tags, :mod:`.wheelzip` the bounded reading of members);
* :mod:`.image` -- saved container images (docker-archive, OCI layout,
  flat root-file-system tar) read as one merged tree, nothing extracted
  (:mod:`.imagemanifest` the formats and manifests, :mod:`.imageblob` the
  bounded reading of blobs and tars); :mod:`.imagescan` walks that tree as
  :mod:`.walk` walks a folder.

In-root paths become host paths through :mod:`rundeps.rootfs` only.
"""

"""The apk side of rundeps: packages, repository indexes and where they come from.

* :mod:`~rundeps.apk.model` -- the package model: installed database,
  providers, ``D:`` closure, minimal set;
* :mod:`~rundeps.apk.index` -- reading and verifying ``APKINDEX.tar.gz``
  (its gzip and tar reading in :mod:`~rundeps.apk.tarread`);
* :mod:`~rundeps.apk.keys` -- the trusted keys;
* :mod:`~rundeps.apk.fetch` -- opening an index through the cache or the
  network (:mod:`~rundeps.apk.download`: HTTP;
  :mod:`~rundeps.apk.indexcache`: the disk cache);
* :mod:`~rundeps.apk.repositories` -- where indexes are: ``--index``,
  ``--repo``, ``--alpine``, a root's ``etc/apk/repositories``;
* :mod:`~rundeps.apk.imagecache` -- the image's own apk cache
  (``var/cache/apk``);
* :mod:`~rundeps.apk.sources` -- the package sources put together: the
  installed database and the indexes, as one ``Universe`` (re-exported by
  :mod:`rundeps.api`);
* :mod:`~rundeps.apk.sizes` -- installed sizes, closures, the build virtual.

Nothing is imported here, so importing one of them stays as light as before.
"""

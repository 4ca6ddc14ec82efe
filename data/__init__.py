"""Package data of rundeps (this folder is ``data/`` in the source tree).

See README.md beside this file; :func:`rundeps.datafiles.data_path` finds a file.
"""

"""Batch jobs in chunks on one machine or a Dask cluster, written into a Zarr store.

`store`: making a job's store (`uvs.stores` opens and reads one); `jobs`: each job's inputs,
fingerprint and store; `tasks`: what one task computes on a worker (models loaded once per
worker process); `run`: planning, sharding, execution and progress; `merge`: combining stores
written by independent shards. Dask, distributed and zarr (the `[cluster]` extra) are
imported only inside the functions (`uvs.extras.need_cluster`).
"""

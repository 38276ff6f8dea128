"""CSV batches: a CSV in, every row analysed with the same settings, a results CSV out.

- `csv_input`: read and check a CSV (`read_batch_csv`): rows, passthrough columns, a report of
  problems with spreadsheet row numbers.
- `kinds`: what a job does with each row (analyze, labels, fact-check), a small registry.
- `store`: the SQLite job store (`<data dir>/jobs.sqlite`, WAL): jobs, items, attempts, and the one
  worker lease per data dir.
- `worker`: the worker that claims items under that lease (in the app's server process, or in a
  headless `python -m core batch`); `submit`: a job made from a checked CSV.
- `export`: results CSV (formula cells neutralised), JSON Lines, the original CSV with columns added.
- `evaluate`: accuracy, macro-F1, per-class precision and recall, the confusion matrix.
- `cli`: the `batch` and `evaluate` commands.
"""

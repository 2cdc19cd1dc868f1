"""Lightning's CSV logger, kept across a resume: ``csv/metrics.csv`` grows with every attempt of a
run instead of being deleted when a resumed attempt logs its first row (what Lightning's writer
does to a directory that is not empty). Steps logged after the last checkpoint of a killed attempt
appear twice, the resumed attempt's row last."""

import csv

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter


class _AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        """Keeps the earlier attempts' rows, and their columns: the writer appends to the file, or
        rewrites it with a header widened by the columns it has not seen."""
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = next(csv.reader(file), [])


class ResumableCSVLogger(CSVLogger):
    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment

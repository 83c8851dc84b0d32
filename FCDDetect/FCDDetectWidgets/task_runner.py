"""A panel's one running background job (Qt): progress bar, status line, Cancel, result on the main thread.

The job is anything with ``poll()`` (a ``TaskStatus``), ``cancel()`` and ``running``: a
``BackgroundTask``, a ``DetectionJob`` or a ``BatchJob``. A ``QTimer`` polls it every
:data:`POLL_MS` ms, so the panel stays responsive; when the job has ended, ``onDone(job)`` runs
on the main thread (it takes the result and adds nodes to the scene; the text it returns, if
any, becomes the status line). A cancelled job is a
status line, not an error; bad input (``FCDInputError``) is one message; any other failure an
error dialog with the end of the child's log.

Example::

    runner = TaskRunner(self.ui.taskWidget, self.ui.taskProgressBar, self.ui.taskStatusLabel,
                        self.ui.cancelButton, onBusyChanged=self.updateApplyButton)
    runner.run(self.logic.process(inputs, model, wait=False), "FCD detection", self.onDetectionDone)

:func:`waitWithProgress` is the blocking form for scripts (a progress dialog with Cancel).
"""

import logging

import qt
import slicer

POLL_MS = 200


class TaskRunner:
    """Runs one job at a time for a panel (see the module docstring)."""

    def __init__(self, container, progressBar, statusLabel, cancelButton, onBusyChanged=None, onLog=None):
        self.container = container
        self.progressBar = progressBar
        self.statusLabel = statusLabel
        self.cancelButton = cancelButton
        self.onBusyChanged = onBusyChanged
        self.onLog = onLog
        self.job = None
        self.description = ""
        self.onDone = None
        self.timer = qt.QTimer()
        self.timer.setInterval(POLL_MS)
        self.timer.connect("timeout()", self.poll)
        self.cancelButton.connect("clicked(bool)", self.cancel)

    @property
    def running(self) -> bool:
        return self.job is not None

    def run(self, job, description: str, onDone) -> None:
        """Follow ``job`` (already started); ``onDone(job)`` once it has ended."""
        if self.job is not None:
            raise RuntimeError(f"{self.description} is still running: cancel it first")
        self.job, self.description, self.onDone = job, description, onDone
        self.progressBar.maximum = 0  # busy until the first progress line
        self.statusLabel.text = f"{description}: starting..."
        self.container.visible = True
        self.cancelButton.enabled = True
        self.timer.start()
        self._busyChanged()

    def cancel(self) -> None:
        """Stop the running job without waiting (the next poll sees it end)."""
        if self.job is not None:
            self.job.cancel()
            self.cancelButton.enabled = False
            self.statusLabel.text = f"{self.description}: cancelling..."

    def poll(self) -> None:
        if self.job is None:
            self.timer.stop()
            return
        status = self.job.poll()
        if status.fraction is None:
            self.progressBar.maximum = 0
        else:
            self.progressBar.maximum = 100
            self.progressBar.value = int(round(100 * status.fraction))
        if self.onLog is not None:
            for line in status.lines:
                self.onLog(line)
        if status.running:
            if self.cancelButton.enabled:
                self.statusLabel.text = f"{self.description}: {status.message or 'running'} ({status.seconds:.0f} s)"
            return
        self.timer.stop()
        job, onDone, self.job = self.job, self.onDone, None
        self.container.visible = False
        try:
            message = onDone(job)
            self.statusLabel.text = message or f"{self.description}: done ({status.seconds:.0f} s)."
        except Exception as error:  # shown to the user, never raised into Qt's event loop
            self.statusLabel.text = self.failed(error)
        finally:
            self._busyChanged()

    def failed(self, error) -> str:
        """The status line for a job that did not finish; a dialog for a real failure."""
        from FCDDetectLib.errors import FCDInputError
        from FCDDetectLib.slicer_support.background_task import TaskCancelled

        if isinstance(error, TaskCancelled):
            return f"{self.description}: cancelled; nothing was added."
        if isinstance(error, FCDInputError):
            slicer.util.errorDisplay(f"{self.description}: {error}")
            return f"{self.description}: {error}"
        logging.exception(f"{self.description} failed")
        slicer.util.errorDisplay(f"{self.description} failed.", detailedText=str(error))
        return f"{self.description} failed."

    def cleanup(self) -> None:
        """The panel goes away (Slicer closes, the module reloads): stop the running job."""
        self.timer.stop()
        if self.job is not None:
            self.job.cancel()
            self.job = None
            self.container.visible = False
            self.statusLabel.text = f"{self.description}: cancelled."

    def _busyChanged(self) -> None:
        if self.onBusyChanged is not None:
            self.onBusyChanged()


def waitWithProgress(job, title: str, showProgress: bool = True):
    """Block until ``job`` (a detection, batch or task) ends, for scripts: a progress dialog whose
    Cancel stops it, Slicer repainting meanwhile. Returns what ``job.wait`` returns."""
    dialog = slicer.util.createProgressDialog(labelText=title, maximum=100) if showProgress else None

    def onStatus(status):
        if dialog is not None:
            if status.fraction is None:
                dialog.maximum = 0  # busy
            else:
                dialog.maximum = 100
                dialog.value = int(round(100 * status.fraction))
            dialog.labelText = f"{title}\n{status.message} ({status.seconds:.0f} s)"
        slicer.app.processEvents()
        return bool(dialog is not None and dialog.wasCanceled)

    try:
        return job.wait(on_status=onStatus)
    finally:
        if dialog is not None:
            dialog.close()

"""FCDTrain's self-test (Slicer's "Reload and Test", ctest): events, progress, results nodes."""

import os
from pathlib import Path

import slicer
from FCDTrainLib.slicer_support.train_launcher import TrainSettings
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest


class FCDTrainTest(ScriptedLoadableModuleTest):
    """Self-test: command line, progress from events, results as table and plot nodes."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_FCDTrain_events_and_results()

    def test_FCDTrain_events_and_results(self):
        import tempfile

        from FCDTrainLib.mrml.experiment_nodes import experiment_results_nodes
        from FCDTrainLib.run_folder.event_log import EventLog
        from FCDTrainLib.slicer_support.train_launcher import run_progress

        with tempfile.TemporaryDirectory() as folder:
            settings = TrainSettings(data=folder, out=os.path.join(folder, "run"), depths=[18], max_epochs=2, folds=2)
            self.assertEqual(settings.arguments()[:1], ["train"])
            log = EventLog(Path(settings.out) / "events.jsonl")
            log.emit("start", folds=[0, 1], max_epochs=2)
            for fold in (0, 1):
                for epoch in (1, 2):
                    log.emit("epoch", fold=fold, epoch=epoch, train_loss=1.0 / epoch, val_loss=1.2 / epoch, seconds=1.0)
                log.emit("fold_done", fold=fold, metrics={"accuracy": 0.5 + fold / 4, "roc_auc": 0.7})
            log.emit("done")
            self.assertEqual(run_progress(settings.out)["status"], "done")
            nodes = experiment_results_nodes(slicer.mrmlScene, settings.out)
            self.assertEqual(nodes["folds_table"].GetTable().GetNumberOfRows(), 2)
            self.assertEqual(nodes["curves_table"].GetTable().GetNumberOfRows(), 2)
        self.delayDisplay("FCDTrain self-test passed")

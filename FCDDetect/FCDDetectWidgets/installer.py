"""First-use installer of the Python packages both modules need (Qt side).

The order and the checks are Qt-free (:mod:`FCDDetectLib.slicer_support.dependencies`): torch first
through the PyTorch extension (``PyTorchUtils`` picks the CUDA build), then the rest with
``slicer.util.pip_install`` under a ``torch==<installed>`` constraint, and the restart check
from the versions seen before and after installing. One confirmation per install: the user's
"yes" here is the only question (``installTorch(askConfirmation=False)``); cancelling is not an
error; a restart that is needed is one information message. Inside Slicer's tests nothing is
installed, and a missing package is an error (the self-test fails, it is never skipped).

Example (Slicer Python console)::

    from FCDDetectWidgets.installer import ensureDependencies
    ensureDependencies()  # True when everything is importable now
"""

import logging
import os
import tempfile

import slicer
from FCDDetectLib.slicer_support.dependencies import (
    install_decision,
    install_plan,
    installed_version,
    installed_versions,
    missing_requirements,
    read_requirements,
    restart_needed,
    torch_constraint,
)

from FCDDetectWidgets.compat import slicer_version_problem


def requirementsPath() -> str:
    """FCDDetect/Resources/requirements.txt (both modules use it)."""
    return os.path.join(os.path.dirname(os.path.dirname(__file__)), "Resources", "requirements.txt")


def versionProblem():
    """The message for a Slicer older than the supported one, else None."""
    return slicer_version_problem(slicer.app.majorVersion, slicer.app.minorVersion)


def ensureDependencies(askConfirmation: bool = True) -> bool:
    """Install missing Python packages after one confirmation; True when they are usable now.

    False (after one message, never an error dialog) when the user cancels or when Slicer must
    restart. Raises RuntimeError when packages are missing while Slicer runs its tests (nothing
    is installed there: the self-test fails) and when an install fails.
    """
    problem = versionProblem()
    if problem:
        raise RuntimeError(problem)
    requirements = read_requirements(requirementsPath())
    missing = missing_requirements(requirements)
    decision = install_decision(missing, testing=slicer.app.testingEnabled())
    if decision == "ready":
        return True
    names = ", ".join(str(r) for r in missing)
    if decision == "refuse":
        raise RuntimeError(f"FCD detection: Python packages missing while Slicer runs its tests: {names}. "
                           "Nothing is installed during tests: install them first.")
    if askConfirmation and not slicer.util.confirmOkCancelDisplay(
        f"FCD detection needs these Python packages, not yet installed in Slicer: {names}.\n\n"
        "Download and install them now? torch comes through the PyTorch extension (the build for "
        "your GPU). This can take several minutes.",
        "FCD detection: install Python packages",
    ):
        logging.info(f"FCD detection: installing {names} cancelled")
        return False
    plan = install_plan(missing)
    before = installed_versions(missing)
    if plan.torch is not None:
        try:
            import PyTorchUtils
        except ModuleNotFoundError as error:
            raise RuntimeError(
                "FCD detection needs the PyTorch extension: install 'PyTorch' from the Extensions "
                "Manager, restart Slicer and try again."
            ) from error
        # the user has just agreed: PyTorchUtils must not ask a second time
        torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
            askConfirmation=False, torchVersionRequirement=f">={plan.torch.minimum}"
        )
        if torch is None:
            raise RuntimeError("PyTorch was not installed.")
    if plan.pip_requirements:
        torchVersion = installed_version("torch")
        with tempfile.TemporaryDirectory() as folder:
            constraints = os.path.join(folder, "torch-constraint.txt")
            if torchVersion:
                with open(constraints, "w", encoding="utf-8") as out:
                    out.write(torch_constraint(torchVersion))
            with slicer.util.WaitCursor():
                slicer.util.pip_install(plan.pip_arguments(torchVersion, constraints))
    still = missing_requirements(requirements)
    if still:
        raise RuntimeError(f"Python packages still missing after installing: {', '.join(map(str, still))}")
    restart = restart_needed(missing, before, installed_versions(missing))
    if restart:
        slicer.util.infoDisplay(
            f"The Python packages are installed. Updated packages were already in use ({', '.join(restart)}): "
            "restart Slicer, then press the button again.", "FCD detection: restart Slicer")
        return False
    return True

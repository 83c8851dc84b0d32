"""First-use installer of the Python packages both modules need (Qt side).

The order and the checks are Qt-free (:mod:`FCDDetectLib.slicer_support.dependencies`): torch first
through the PyTorch extension (``PyTorchUtils`` picks the CUDA build), then the rest with
``slicer.util.pip_install`` under a ``torch==<installed>`` constraint, and the restart check
from the versions seen before and after installing. Inside Slicer's tests nothing is
installed (the self-test is skipped instead).

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
    """Install missing Python packages (after asking); False when they are not usable yet
    (Slicer must restart, or Slicer runs its tests and installs nothing)."""
    problem = versionProblem()
    if problem:
        raise RuntimeError(problem)
    requirements = read_requirements(requirementsPath())
    missing = missing_requirements(requirements)
    decision = install_decision(missing, testing=slicer.app.testingEnabled())
    if decision == "ready":
        return True
    names = ", ".join(str(r) for r in missing)
    if decision == "skip":
        logging.warning(f"FCD detection: not installing {names} while Slicer runs its tests")
        return False
    if askConfirmation and not slicer.util.confirmOkCancelDisplay(
        f"FCD detection needs these Python packages, not yet installed in Slicer: {names}.\n\n"
        "Download and install them now? torch is installed by the PyTorch extension. "
        "This can take several minutes.",
        "FCD detection: install Python packages",
    ):
        raise RuntimeError(f"Python packages not installed (cancelled): {names}")
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
        torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
            askConfirmation=askConfirmation, torchVersionRequirement=f">={plan.torch.minimum}"
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
        message = f"Updated packages already in use ({', '.join(restart)}): restart Slicer before continuing."
        logging.warning(message)
        slicer.util.infoDisplay(message, "FCD detection: restart needed")
        return False
    return True

"""Slicer's own Red, Yellow and Green slice views, rendered offscreen to pixels and PNG files.

Each view is what Slicer's slice widget runs, minus Qt: a ``vtkMRMLSliceLogic`` (its slice
node, composite node and the blended background/foreground/label image, with the display
nodes' colour maps, windows and thresholds), a 2D image actor fed by the logic's
``GetImageDataConnection()``, and Slicer's slice displayable managers (crosshair, markups,
segmentations) drawing into the same renderer. The render window is offscreen; on Linux
without a display VTK is told to use EGL (``VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow``;
Mesa's llvmpipe renders without a GPU). The tests assert on these pixels and ``make
screenshots`` writes them into README's and the manual's pictures.

It needs an :class:`~FCDDetectLib.mrml.offscreen_scene.OffscreenScene`-like set-up (an
application logic with the Colors and Markups module logics, a crosshair node, the slice
orientation presets); inside the Slicer application the views already exist and are not
made again.

Example:
    >>> app = OffscreenScene.create()  # doctest: +SKIP
    >>> views = SliceViews(app.app_logic, size=(400, 400))  # doctest: +SKIP
    >>> views.show(flair_node, heatmap_node, opacity=0.5); views.fit(); views.jump_to(peak_ras)  # doctest: +SKIP
    >>> pixels = views.render()  # {"Red": (400, 400, 3) uint8, ...}  # doctest: +SKIP
    >>> views.write_pngs("out", prefix="case")  # out/case-red.png, ...  # doctest: +SKIP
    >>> views.close()  # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from FCDDetectLib.mrml.detection_nodes import jump_slices_to

VIEWS: tuple[tuple[str, str], ...] = (("Red", "Axial"), ("Yellow", "Sagittal"), ("Green", "Coronal"))
"""Slicer's three slice views and their default orientations."""

DISPLAYABLE_MANAGERS: tuple[str, ...] = (
    "vtkMRMLCrosshairDisplayableManager",
    "vtkMRMLMarkupsDisplayableManager",
    "vtkMRMLSegmentationsDisplayableManager2D",
)
"""Slicer's slice displayable managers the views instantiate (what the slice widget draws
over the blended image)."""

EGL_WINDOW = "vtkEGLRenderWindow"


def use_egl_without_display() -> None:
    """On Linux without ``$DISPLAY``, let VTK's render windows use EGL (no X server needed).

    Sets ``VTK_DEFAULT_OPENGL_WINDOW`` unless the caller already chose; without it VTK warns
    about X and falls back to EGL with the same pixels.
    """
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", EGL_WINDOW)


_OPENGL_PROBE = ("import vtk; w = vtk.vtkRenderWindow(); w.SetOffScreenRendering(1); "
                 "print('FCD-OPENGL', w.GetClassName(), int(w.SupportsOpenGL())); w.Finalize()")


def opengl_problem(timeout: float = 120.0) -> str | None:
    """Why no OpenGL context can be made here (None: offscreen rendering works).

    Asked in a child Python, so a host whose OpenGL library crashes VTK gives a reason, not a
    crashed caller.

    Example:
        >>> opengl_problem() is None  # on the project's machines (Mesa EGL)  # doctest: +SKIP
        True
    """
    import subprocess

    use_egl_without_display()
    try:
        probe = subprocess.run([sys.executable, "-c", _OPENGL_PROBE], capture_output=True, text=True,
                               timeout=timeout, env=dict(os.environ))
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"the OpenGL probe did not run: {error}"
    answer = next((line.split() for line in probe.stdout.splitlines() if line.startswith("FCD-OPENGL")), None)
    if probe.returncode != 0 or answer is None:
        tail = (probe.stderr or probe.stdout).strip().splitlines()[-1:] or [f"exit code {probe.returncode}"]
        return f"VTK could not open a render window ({tail[0]})"
    if answer[2] != "1":
        return f"{answer[1]}: no OpenGL context (install Mesa's EGL, e.g. libegl-mesa0)"
    return None


@dataclass
class SliceView:
    """One slice view: its logic, slice node, render window and displayable managers."""

    name: str
    logic: Any
    slice_node: Any
    window: Any
    renderer: Any
    interactor: Any
    managers: Any
    mapper: Any
    actor: Any

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        width, height = self.window.GetSize()
        return int(width), int(height)

    def render(self) -> np.ndarray:
        """The view's pixels, (height, width, 3) uint8, row 0 at the top (as in a PNG)."""
        # The logic replaces its output connection when the layers change (None: no volume
        # shown); Slicer's slice widget follows it the same way.
        connection = self.logic.GetImageDataConnection()
        self.actor.SetVisibility(connection is not None)
        if connection is not None:
            self.mapper.SetInputConnection(connection)
        self.window.Render()
        grab = vtk.vtkWindowToImageFilter()
        grab.SetInput(self.window)
        grab.SetInputBufferTypeToRGB()
        grab.ReadFrontBufferOff()
        grab.Update()
        image = grab.GetOutput()
        width, height, _ = image.GetDimensions()
        pixels = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)
        return np.ascontiguousarray(pixels[::-1, :, :3])

    def xy_to_ras(self) -> np.ndarray:
        """The slice node's XY-to-RAS matrix (4x4): pixel (x, y from the bottom left) to RAS."""
        matrix = self.slice_node.GetXYToRAS()
        return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])

    def ras_to_pixel(self, ras: Sequence[float]) -> tuple[int, int]:
        """(row, column) of the pixel showing ``ras`` (row 0 at the top); it may lie outside the view."""
        xy = np.linalg.solve(self.xy_to_ras(), np.array([*map(float, ras), 1.0]))
        _, height = self.size
        return int(round(height - 1 - xy[1])), int(round(xy[0]))

    def pixel_ras(self) -> np.ndarray:
        """RAS of every pixel centre, (height, width, 3), row 0 at the top."""
        width, height = self.size
        x, y = np.meshgrid(np.arange(width, dtype=float), np.arange(height - 1, -1, -1, dtype=float))
        xy = np.stack([x, y, np.zeros_like(x), np.ones_like(x)], axis=-1)
        return (xy @ self.xy_to_ras().T)[..., :3]


class SliceViews:
    """Slicer's slice views (Red axial, Yellow sagittal, Green coronal), offscreen.

    ``app_logic``: the scene's ``vtkSlicerApplicationLogic`` with the "Colors" and "Markups"
    module logics registered; ``size``: (width, height) of each view in pixels.
    """

    def __init__(self, app_logic: Any, size: tuple[int, int] = (400, 400),
                 views: Sequence[tuple[str, str]] = VIEWS) -> None:
        use_egl_without_display()
        self.app_logic = app_logic
        self.scene = app_logic.GetMRMLScene()
        factory = slicer.vtkMRMLSliceViewDisplayableManagerFactory.GetInstance()
        for manager in DISPLAYABLE_MANAGERS:
            if not factory.IsDisplayableManagerRegistered(manager):
                factory.RegisterDisplayableManager(manager)
        factory.SetMRMLApplicationLogic(app_logic)
        self.views: dict[str, SliceView] = {}
        try:
            for name, orientation in views:
                self.views[name] = self._make_view(factory, name, orientation, size)
        except Exception:
            self.close()
            raise

    def _make_view(self, factory: Any, name: str, orientation: str, size: tuple[int, int]) -> SliceView:
        width, height = int(size[0]), int(size[1])
        if self.scene.GetSingletonNode(name, "vtkMRMLSliceNode") is not None:
            raise ValueError(f"the scene already has a {name!r} slice view (close the other SliceViews first)")
        logic = slicer.vtkMRMLSliceLogic()
        logic.SetMRMLApplicationLogic(self.app_logic)
        logic.SetMRMLScene(self.scene)
        slice_node = logic.AddSliceNode(name)
        slice_node.SetOrientation(orientation)
        slice_node.SetDimensions(width, height, 1)
        self.app_logic.GetSliceLogics().AddItem(logic)

        window = vtk.vtkRenderWindow()
        window.SetOffScreenRendering(1)
        window.SetSize(width, height)
        window.SetMultiSamples(0)
        renderer = vtk.vtkRenderer()
        renderer.SetBackground(0.0, 0.0, 0.0)
        window.AddRenderer(renderer)
        interactor = vtk.vtkGenericRenderWindowInteractor()  # the displayable managers need one
        interactor.SetRenderWindow(window)
        mapper = vtk.vtkImageMapper()  # what Slicer's slice view draws the blended image with
        mapper.SetColorWindow(255.0)
        mapper.SetColorLevel(127.5)
        actor = vtk.vtkActor2D()
        actor.SetMapper(mapper)
        renderer.AddViewProp(actor)
        managers = factory.InstantiateDisplayableManagers(renderer)
        managers.SetMRMLDisplayableNode(slice_node)
        return SliceView(name, logic, slice_node, window, renderer, interactor, managers, mapper, actor)

    def __getitem__(self, name: str) -> SliceView:
        return self.views[name]

    def show(self, background: Any, foreground: Any = None, opacity: float = 0.5, label: Any = None) -> None:
        """Background, foreground (with its opacity) and label map volumes of every view."""
        for view in self.views.values():
            composite = view.logic.GetSliceCompositeNode()
            composite.SetBackgroundVolumeID(background.GetID() if background is not None else None)
            composite.SetForegroundVolumeID(foreground.GetID() if foreground is not None else None)
            composite.SetForegroundOpacity(float(opacity))
            composite.SetLabelVolumeID(label.GetID() if label is not None else None)

    def fit(self, margin: float = 1.0) -> None:
        """Fit every view to its volumes (Slicer's "reset field of view"); ``margin`` > 1 zooms
        out by that factor (the volume's edges then show)."""
        for view in self.views.values():
            view.logic.FitSliceToAll()
            if margin != 1.0:
                x, y, z = view.slice_node.GetFieldOfView()
                view.slice_node.SetFieldOfView(x * margin, y * margin, z)

    def jump_to(self, ras: Sequence[float], centred: bool = True) -> None:
        """Show ``ras`` in every view: centred on it (what selecting a cluster in the panel does,
        :func:`~FCDDetectLib.mrml.detection_nodes.jump_slices_to`), or with ``centred=False``
        only moving each slice through it (the field of view stays)."""
        if centred:
            jump_slices_to(self.scene, ras)
            return
        for view in self.views.values():
            view.slice_node.JumpSliceByOffsetting(float(ras[0]), float(ras[1]), float(ras[2]))

    def render(self) -> dict[str, np.ndarray]:
        """Every view's pixels, ``{name: (height, width, 3) uint8}``."""
        return {name: view.render() for name, view in self.views.items()}

    def write_pngs(self, folder: str | Path, prefix: str = "view") -> dict[str, Path]:
        """Render and write ``folder/PREFIX-red.png`` (and yellow, green); returns the paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return {name: write_png(pixels, folder / f"{prefix}-{name.lower()}.png")
                for name, pixels in self.render().items()}

    def close(self) -> None:
        """Release the render windows (their OpenGL contexts) and the slice logics."""
        for view in self.views.values():
            view.managers.SetMRMLDisplayableNode(None)
            view.window.Finalize()
            self.app_logic.GetSliceLogics().RemoveItem(view.logic)
            composite = view.logic.GetSliceCompositeNode()
            view.logic.SetMRMLScene(None)
            for node in (composite, view.slice_node):  # the next views of this scene start afresh
                if node is not None and node.GetScene() is self.scene:
                    self.scene.RemoveNode(node)
        self.views = {}

    def __enter__(self) -> SliceViews:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()


def side_by_side(images: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Images of one height next to each other, ``gap`` black pixels apart (one picture)."""
    height = images[0].shape[0]
    spacer = np.zeros((height, gap, 3), dtype=np.uint8)
    parts: list[np.ndarray] = []
    for index, image in enumerate(images):
        parts += ([spacer] if index else []) + [image[..., :3]]
    return np.concatenate(parts, axis=1)


def write_png(pixels: np.ndarray, path: str | Path) -> Path:
    """Write (height, width, 3) uint8 pixels (row 0 at the top) as a PNG, atomically."""
    path = Path(path)
    height, width = pixels.shape[:2]
    image = vtk.vtkImageData()
    image.SetDimensions(width, height, 1)
    flat = np.ascontiguousarray(pixels[::-1, :, :3], dtype=np.uint8).reshape(-1, 3)
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(flat, deep=True))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(tmp))
    writer.SetInputData(image)
    try:
        writer.Write()
        if writer.GetErrorCode():
            raise OSError(f"{path}: could not write the PNG (VTK error {writer.GetErrorCode()})")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path

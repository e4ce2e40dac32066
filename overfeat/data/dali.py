"""An optional NVIDIA DALI training loader: §3.1's random crops and flips, decoded by DALI.

Sermanet et al. 2014 §3.1 (FACTS.md §6.1): each training image is "downsampled so that the
smallest dimension is 256 pixels", and the network sees random crops of it "(and their horizontal
flips)". :class:`DaliTrainLoader` yields the same views as the default loader (a torch
``DataLoader`` over a :class:`~overfeat.data.ClassificationDataset` with a
:class:`~overfeat.data.transforms.TrainTransform` and the engine's ``ShardedTrainSampler``), with
the JPEG decode and the resampling done by DALI (on the GPU with ``device="mixed"`` when the
loader's device is CUDA, on the CPU otherwise) instead of PIL in worker processes.

What is the same. The indices come from the ``ShardedTrainSampler`` (``set_epoch(epoch,
start_step)``, local batches of ``sampler.local_batch``), so the order, the sharding over ranks
and the mid-epoch resume are the default loader's. Every random choice is made on the host from
``sample_rng(dataset.seed, epoch, index)`` exactly as ``TrainTransform`` makes it: the decoded size
``(H, W)`` is the size the default loader decodes at (PIL's header, after the same ``draft`` call
as :func:`~overfeat.data.decode.decode_rgb`: decision JPEG_DRAFT), ``(h, w) =
shorter_side_size(H, W, transform.resize)``, then ``y0``, ``x0`` and the flip are drawn in that
order. So sample ``i`` of epoch ``e`` is cut from the same place, and flipped or not, under
either loader, for any number of processes and after any resume.

Where DALI differs.

- Pixel values: the resize is DALI's linear filter with antialiasing, not PIL's bilinear filter,
  and a JPEG PIL would draft (decode at 1/2, 1/4, 1/8 scale) is decoded by DALI at full size and
  resized from there (DALI has no reduced-scale decode); the geometry is unchanged. Measured on
  the synthetic set against the default loader's uint8 pixels: at 256/221 (nothing drafted) a
  mean absolute difference of 0.16 grey levels and never more than 1; at a toy 64/48, where PIL
  drafts most images, 0.55 on average. On a GPU, nvJPEG's IDCT differs from libjpeg-turbo's
  (by about a grey level) as well.
- Corrupt files: a file PIL cannot open (empty, unreadable, not an image, a decompression bomb)
  is skipped and counted, warned about once, as by the default loader. A JPEG that does not end
  with its end-of-image marker (truncated, or with trailing bytes) and every non-JPEG or
  non-RGB/grey JPEG (CMYK, PNG, ...) is decoded by PIL's :func:`~overfeat.data.decode.decode_rgb`
  itself, so it is skipped exactly when the default loader skips it, and otherwise has the
  default loader's pixels before the resize (decision DALI_DECODES_PLAIN_JPEG). A complete
  JPEG whose data is damaged inside can still differ: if DALI rejects it, the batch is decoded
  again by PIL (decision DALI_ERROR_FALLS_BACK_TO_PIL); if DALI decodes what PIL would reject
  (libjpeg-turbo only warns about some damaged entropy-coded data), it is kept, not skipped.
- Output: uint8 ``(B, 3, crop, crop)``, not normalised; the caller normalises on the device with
  ``transform.normalization`` (``(x.float() - mean) / std``, per channel, 0-255 scale).

DALI (``pip install 'overfeat-repro[dali]'``, the package :data:`DALI_REQUIREMENT`) is imported
only when a loader is built or :func:`dali_unavailable` is called, so this module imports without
it.
"""

from __future__ import annotations

import functools
import io
import os
import queue
import threading
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from overfeat.data.decode import (
    DRAFT_SHORT_SIDE_FACTOR,
    CorruptImage,
    SkipCounter,
    decode_rgb,
    pil_errors_as_corrupt,
    plain_jpeg,
)
from overfeat.data.transforms import sample_rng, shorter_side_size

if TYPE_CHECKING:
    from overfeat.data.datasets import ClassificationDataset
    from overfeat.data.sampler import ShardedTrainSampler
    from overfeat.data.transforms import TrainTransform

__all__ = ["DALI_REQUIREMENT", "DaliTrainLoader", "dali_unavailable"]

# The PyPI package (CUDA 13 build; its CPU operators need no GPU). Extra: overfeat-repro[dali].
DALI_REQUIREMENT = "nvidia-dali-cuda130"

_INSTALL_HINT = f"pip install 'overfeat-repro[dali]' (or {DALI_REQUIREMENT})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


@functools.lru_cache(maxsize=1)
def dali_unavailable() -> str | None:
    """None when ``nvidia.dali`` imports and can run here; else one line saying why and how to
    install.

    "Can run" is checked by decoding and resizing a tiny in-memory JPEG with a CPU pipeline (a
    few milliseconds, once per process, cached). DALI's GPU operators are checked when a loader
    for a CUDA device is built: probing a GPU here would open a CUDA context on a device the
    caller may not use.
    """
    try:
        import nvidia.dali as dali
    except ImportError as exc:
        return f"NVIDIA DALI is not installed ({_first_line(exc)}); {_INSTALL_HINT}"
    except Exception as exc:  # a broken install raises anything from its native libraries
        return f"NVIDIA DALI cannot be imported ({_first_line(exc)}); reinstall: {_INSTALL_HINT}"
    try:
        from nvidia.dali import fn, pipeline_def, types

        # A probe of its own, not the loader's graph: a bug there must fail the tests, not
        # make them skip as "DALI unavailable".
        @pipeline_def(batch_size=1, num_threads=1, device_id=None, prefetch_queue_depth=1)
        def probe():
            encoded = fn.external_source(name="encoded", dtype=types.UINT8, ndim=1)
            return fn.resize(fn.decoders.image(encoded, device="cpu"), size=[4.0, 4.0])

        buf = io.BytesIO()
        Image.new("RGB", (8, 6), (200, 100, 50)).save(buf, format="JPEG")
        pipe = probe()
        pipe.build()
        (out,) = pipe.run(encoded=[np.frombuffer(buf.getvalue(), dtype=np.uint8)])
        if np.array(out.as_tensor()).shape != (1, 4, 4, 3):
            return f"NVIDIA DALI {dali.__version__} returned a wrong shape from a CPU pipeline"
    except Exception as exc:
        return (
            f"NVIDIA DALI {dali.__version__} is installed but cannot run a CPU pipeline here "
            f"({_first_line(exc)}); {_INSTALL_HINT}"
        )
    return None


def _build_pipeline(batch_size: int, crop: int, threads: int, device_id: int | None):
    """decode → resize-and-crop-and-flip → CHW, fed per batch through three external sources:

    ``encoded``: the file's bytes ``(n,)`` uint8; ``roi_start``/``roi_end``: ``(2,)`` float32, the
    crop's corners ``(y, x)`` relative to the decoded image (x swapped for a flipped crop).
    Output: ``(3, crop, crop)`` uint8 per sample, on the GPU when ``device_id`` is set.
    """
    from nvidia.dali import fn, pipeline_def, types

    gpu = device_id is not None

    # Decision DALI_FEED_PER_BATCH: the host feeds each batch with ``run(**inputs)``, which needs
    # prefetch_queue_depth=1; prefetching is the loader's own producer thread (HOST_THREAD_PREFETCH
    # below), so the order, skips and empty batches stay plain Python.
    @pipeline_def(
        batch_size=batch_size,
        num_threads=threads,
        device_id=device_id,
        prefetch_queue_depth=1,
        # Refcounted output buffers: a batch handed to torch (DLPack) stays valid while used.
        exec_dynamic=True,
    )
    def graph():
        encoded = fn.external_source(name="encoded", dtype=types.UINT8, ndim=1)
        start = fn.external_source(name="roi_start", dtype=types.FLOAT, ndim=1)
        end = fn.external_source(name="roi_end", dtype=types.FLOAT, ndim=1)
        decode_args = {}
        if gpu:
            # Decision JPEG_FANCY_UPSAMPLING: nvJPEG upsamples chroma as libjpeg-turbo (PIL, the
            # CPU decoder) does, so GPU and CPU runs differ only by the IDCT.
            decode_args["jpeg_fancy_upsampling"] = True
        images = fn.decoders.image(
            encoded,
            device="mixed" if gpu else "cpu",
            output_type=types.RGB,
            # Decision NO_EXIF_ROTATION: PIL's decode_rgb ignores EXIF orientation; so must DALI,
            # or a rotated photograph's (H, W) would not be the size the crop was drawn in.
            adjust_orientation=False,
            **decode_args,
        )
        # Decision RESIZE_ONLY_THE_CROP: resizing the ROI [roi_start, roi_end) of the decoded
        # image to crop x crop is "resize the whole image to exactly (h, w), crop (y0, x0, crop,
        # crop), flip" in one pass: the ROI is the crop's window scaled to the decoded image, so
        # the scale is the full resize's and the antialiasing filter reads the same neighbours
        # (measured: at most 1 grey level apart, on 0.004% of pixels, from float rounding), while
        # only crop² pixels are computed. roi_end < roi_start in x is DALI's horizontal flip.
        images = fn.resize(
            images,
            size=[float(crop), float(crop)],
            roi_start=start,
            roi_end=end,
            roi_relative=True,
            interp_type=types.INTERP_LINEAR,
            antialias=True,
        )
        return fn.transpose(images, perm=[2, 0, 1])

    pipe = graph()
    pipe.build()
    return pipe


@dataclass
class _Sample:
    """One readable training image, ready for DALI: the bytes DALI decodes and the crop window
    ``roi_start``/``roi_end`` ``(2,)`` float32, relative ``(y, x)``, x swapped when flipped."""

    index: int
    path: str
    label: int
    encoded: np.ndarray
    roi_start: np.ndarray
    roi_end: np.ndarray
    via_pil: bool


@dataclass
class _Failure:
    error: BaseException


_END = object()


class DaliTrainLoader:
    """The §3.1 training views of ``dataset``, batch by batch in ``sampler``'s order, via DALI.

    ``dataset``: the training :class:`~overfeat.data.ClassificationDataset` (its ``samples`` and
    ``seed``); ``transform``: its :class:`~overfeat.data.transforms.TrainTransform` (``crop``,
    ``resize``); ``sampler``: the engine's ``ShardedTrainSampler`` over ``len(dataset)``;
    ``device``: CUDA → decode with nvJPEG and resize on that GPU, anything else → DALI's CPU
    operators; ``threads``: DALI's worker threads; ``prefetch``: batches prepared ahead.

    Iterating yields ``(images, labels, skipped)`` per local batch: ``images`` uint8
    ``(B, 3, crop, crop)`` (on ``device`` when it is CUDA, else on the CPU), ``labels`` int64
    ``(B,)`` on the CPU, ``skipped`` the files of the batch that could not be read (dropped, so
    ``B = sampler.local_batch - skipped``; ``B`` may be 0).
    """

    def __init__(
        self,
        dataset: ClassificationDataset,
        transform: TrainTransform,
        sampler: ShardedTrainSampler,
        device: torch.device,
        threads: int = 2,
        prefetch: int = 2,
    ):
        reason = dali_unavailable()
        if reason is not None:
            raise RuntimeError(reason)
        if not (hasattr(dataset, "samples") and hasattr(dataset, "seed")):
            raise TypeError(
                f"DaliTrainLoader needs a ClassificationDataset (samples, seed), got "
                f"{type(dataset).__name__}; build a ClassificationDataset of the subset instead"
            )
        if len(dataset.samples) != sampler.num_samples:
            raise ValueError(
                f"the sampler covers {sampler.num_samples} samples, the dataset holds "
                f"{len(dataset.samples)}"
            )
        if threads < 1 or prefetch < 1:
            raise ValueError(f"threads ({threads}) and prefetch ({prefetch}) must be >= 1")
        self.dataset = dataset
        self.transform = transform
        self.sampler = sampler
        self.device = torch.device(device)
        self.threads = int(threads)
        self.prefetch = int(prefetch)
        self._cuda = self.device.type == "cuda"
        self._device_id = (
            (self.device.index if self.device.index is not None else torch.cuda.current_device())
            if self._cuda
            else None
        )
        self._skips = SkipCounter()
        self._busy = threading.Lock()
        # Built now, so a DALI that cannot use this GPU fails here, not at the first step.
        self._pipe = self._new_pipeline()

    def _new_pipeline(self):
        return _build_pipeline(
            self.sampler.local_batch, self.transform.crop, self.threads, self._device_id
        )

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Iterate ``epoch`` from step ``start_step``: the sampler's ``set_epoch``, which is also
        where the crops' epoch comes from (``sampler.epoch``)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.sampler.set_epoch(epoch, start_step)

    def __len__(self) -> int:
        """Local batches left in the epoch: ``steps_per_epoch - start_step``."""
        return len(self.sampler) // self.sampler.local_batch

    @property
    def num_skipped(self) -> int:
        """Unreadable files met so far by this loader (each batch's ``skipped`` adds up to it)."""
        return self._skips.count

    def __iter__(self):
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("DaliTrainLoader is already being iterated; finish that epoch first")
        try:
            epoch = int(self.sampler.epoch)
            indices = list(iter(self.sampler))
            local = self.sampler.local_batch
            batches = [indices[k : k + local] for k in range(0, len(indices), local)]
            yield from self._produce_in_background(epoch, batches)
        finally:
            self._busy.release()

    def _produce_in_background(self, epoch: int, batches: list[list[int]]):
        # Decision HOST_THREAD_PREFETCH: one producer thread reads the files, draws the crops and
        # runs DALI (whose operators run on its own threads, the GIL released) up to `prefetch`
        # batches ahead of the training step; the queue keeps the sampler's order.
        ready: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    ready.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                for batch in batches:
                    if stop.is_set() or not put(self._load_batch(epoch, batch)):
                        return
                put(_END)
            except BaseException as exc:  # handed to the consumer, raised there
                put(_Failure(exc))

        worker = threading.Thread(target=produce, name="dali-train-loader", daemon=True)
        worker.start()
        try:
            while True:
                item = ready.get()
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        finally:
            stop.set()
            worker.join()

    # ------------------------------------------------------------------ one batch, on the host

    def _load_batch(self, epoch: int, batch: list[int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        samples = [s for s in (self._sample(epoch, i) for i in batch) if s is not None]
        if samples:
            try:
                images = self._run(samples)
            except Exception as exc:
                samples = self._after_dali_error(samples, exc)
                images = self._run(samples) if samples else None
        else:
            images = None
        if images is None:
            # Decision EMPTY_BATCH: every file of the batch unreadable → a (0, 3, crop, crop)
            # batch on the output device; the engine decides what an empty step does.
            crop = self.transform.crop
            images = torch.empty(0, 3, crop, crop, dtype=torch.uint8, device=self._out_device())
            samples = []
        labels = torch.tensor([s.label for s in samples], dtype=torch.int64)
        return images, labels, len(batch) - len(samples)

    def _out_device(self) -> torch.device:
        return self.device if self._cuda else torch.device("cpu")

    def _sample(self, epoch: int, index: int) -> _Sample | None:
        """Read sample ``index``'s file and draw its crop; None (skipped, counted) if unreadable."""
        path, label = self.dataset.samples[index]
        path = os.fspath(path)
        try:
            fmt, mode, height, width, data = _inspect(path, self.transform.resize)
            # Decision DALI_DECODES_PLAIN_JPEG: DALI decodes a complete (EOI-terminated) RGB or
            # grey JPEG, ILSVRC's usual file. Anything else (CMYK, PNG, truncated, trailing
            # bytes) is decoded here by decode_rgb, the default loader's decoder, which skips
            # what it skips, and handed to DALI losslessly as a binary PPM.
            via_pil = not (fmt == "JPEG" and plain_jpeg(data, mode))
            if via_pil:
                data = _as_ppm(decode_rgb(path, self.transform.resize, data))
        except CorruptImage as err:
            self._skips.skip(err)
            return None
        start, end = self._window(epoch, index, height, width)
        encoded = np.frombuffer(data, dtype=np.uint8)
        return _Sample(index, path, int(label), encoded, start, end, via_pil)

    def _window(self, epoch: int, index: int, height: int, width: int):
        """The crop window of sample ``index`` in epoch ``epoch``, decoded at ``height x width``:
        relative ``(y, x)`` corners, x swapped when the crop is flipped."""
        crop = self.transform.crop
        h, w = shorter_side_size(height, width, self.transform.resize)
        rng = sample_rng(self.dataset.seed, epoch, index)
        # Decision DALI_GEOMETRY_ON_HOST: TrainTransform's own draws (TrainTransform.draw), from
        # the same generator; DALI only executes them, so the geometry is the default loader's.
        y0, x0, flip = self.transform.draw(h, w, rng)
        # Relative to (h, w), hence to whatever size DALI decodes at (full size where PIL drafts).
        start = [y0 / h, x0 / w]
        end = [(y0 + crop) / h, (x0 + crop) / w]
        if flip:
            start[1], end[1] = end[1], start[1]
        return np.array(start, dtype=np.float32), np.array(end, dtype=np.float32)

    # ------------------------------------------------------------------ DALI

    def _run(self, samples: list[_Sample]) -> torch.Tensor:
        """``(len(samples), 3, crop, crop)`` uint8 from DALI, on the output device."""
        if self._pipe is None:
            self._pipe = self._new_pipeline()
        (out,) = self._pipe.run(
            encoded=[s.encoded for s in samples],
            roi_start=[s.roi_start for s in samples],
            roi_end=[s.roi_end for s in samples],
        )
        if not self._cuda:
            return torch.from_numpy(np.array(out.as_tensor()))  # a copy: DALI reuses its buffers
        # The outputs are host-synchronised (run() without a stream); DLPack hands the buffer to
        # torch, which keeps it alive, as DALI's own PyTorch iterator does with this executor.
        with torch.cuda.device(self.device):
            return torch.from_dlpack(out.as_tensor())

    def _after_dali_error(self, samples: list[_Sample], exc: Exception) -> list[_Sample]:
        # Decision DALI_ERROR_FALLS_BACK_TO_PIL: DALI rejected a batch that PIL could open (a
        # JPEG damaged inside, or a format DALI does not take): decode every file of the batch
        # with decode_rgb, as the default loader would (skipping what it skips), and run DALI
        # again on the PPMs; a second failure is not about the files and is raised. The
        # pipeline is rebuilt, since an executor may not be reusable after an error.
        warnings.warn(
            f"DALI could not decode a batch ({_first_line(exc)}); decoding its "
            f"{len(samples)} files with PIL",
            RuntimeWarning,
            stacklevel=2,
        )
        self._pipe = None
        kept = []
        for s in samples:
            if not s.via_pil:
                try:
                    s.encoded = np.frombuffer(
                        _as_ppm(decode_rgb(s.path, short_side=self.transform.resize)), np.uint8
                    )
                    s.via_pil = True
                except CorruptImage as err:
                    self._skips.skip(err)
                    continue
            kept.append(s)
        return kept

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self.dataset.samples)} images, crop={self.transform.crop},"
            f" resize={self.transform.resize}, local_batch={self.sampler.local_batch},"
            f" device={self.device}, threads={self.threads}, prefetch={self.prefetch})"
        )


def _inspect(path: str, short_side: int) -> tuple[str, str, int, int, bytes]:
    """``(format, mode, H, W, bytes)`` of ``path`` from its header: ``(H, W)`` is the size
    :func:`~overfeat.data.decode.decode_rgb` decodes at (after the same ``draft``). Raises
    :class:`CorruptImage` where decode_rgb would already fail at opening."""
    with pil_errors_as_corrupt(path):
        with open(path, "rb") as f:
            data = f.read()
        if not data:
            raise CorruptImage(path, "empty file")
        with Image.open(io.BytesIO(data)) as img:
            fmt, mode = img.format, img.mode  # the mode before draft: the file's own
            if fmt == "JPEG":
                want = DRAFT_SHORT_SIDE_FACTOR * short_side
                img.draft("RGB", (want, want))  # header only: sets the size, decodes nothing
            width, height = img.size
    return fmt or "", mode, height, width, data


def _as_ppm(img: Image.Image) -> bytes:
    """An RGB image as binary PPM bytes: lossless, and decoded by DALI without any conversion."""
    buf = io.BytesIO()
    img.save(buf, format="PPM")
    return buf.getvalue()

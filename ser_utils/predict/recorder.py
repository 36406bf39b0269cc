"""Notebook 10's microphone: record a sentence in the browser and see what the model hears in it.

Why a custom widget: no maintained Jupyter widget records audio, and the browser already can (the
MediaRecorder API). :class:`Recorder` is an `anywidget <https://anywidget.dev>`_ widget: a few lines
of JavaScript in :data:`RECORDER_JS` (a record / stop button and one status line) that hand the
take's bytes to the kernel, where it is decoded like any upload (Chromium and Firefox record
WebM/Opus or Ogg/Opus, Safari MP4/AAC: FFmpeg reads them, :mod:`ser_utils.data.decoders`) and
scored by :func:`ser_utils.predict.view.show_recording` (the take played back, the probability
bars, the timeline of a long take). anywidget runs the same code in JupyterLab, Notebook 7 and
VS Code.

The microphone is asked for without echo cancellation, noise suppression or automatic gain: the
runs were trained on recordings as captured, and those filters reshape the voice the model hears.
A browser that denies the microphone, has none, or cannot record says so in the status line.
"""

from __future__ import annotations

from typing import Any

import anywidget
import traitlets

from ser_utils.predict.predictor import Predictor

#: CSS class of the recorder's result area (the browser test reads the prediction there).
RECORDER_RESULT_CLASS = "ser-recorder-result"

#: The recorder in the browser: one button (record / stop) and one status line.
RECORDER_JS = r"""
const NO_MIC = {
  NotAllowedError: "the browser denied the microphone: allow it for this page (the icon in the address bar) and record again",
  SecurityError: "the browser denied the microphone: allow it for this page (the icon in the address bar) and record again",
  NotFoundError: "no microphone found: connect one and record again",
  NotReadableError: "the microphone is busy or unavailable: close other programs using it and record again",
};
const RAW = { echoCancellation: false, noiseSuppression: false, autoGainControl: false };

function render({ model, el }) {
  const button = document.createElement("button");
  const status = document.createElement("span");
  button.className = "ser-recorder-button";
  status.className = "ser-recorder-status";
  button.textContent = "● record";
  status.textContent = model.get("message");
  model.on("change:message", () => { status.textContent = model.get("message"); });
  // the last take's prediction, readable from the page (the browser test compares it with `predict`)
  model.on("change:heard", () => { el.dataset.heard = JSON.stringify(model.get("heard")); });
  let recorder = null;

  function say(line) { status.textContent = line; model.set("message", line); model.save_changes(); }

  button.addEventListener("click", async () => {
    if (recorder && recorder.state === "recording") { recorder.stop(); return; }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || typeof MediaRecorder === "undefined") {
      say("this browser cannot record here (it needs https or localhost and MediaRecorder): upload a file instead");
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: RAW });
    } catch (err) {
      say(NO_MIC[err.name] || `the microphone is unavailable (${err.name}): upload a file instead`);
      return;
    }
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.addEventListener("dataavailable", (e) => { if (e.data.size) chunks.push(e.data); });
    recorder.addEventListener("stop", async () => {
      stream.getTracks().forEach((track) => track.stop());
      button.textContent = "● record";
      const blob = new Blob(chunks, { type: recorder.mimeType });
      say("scoring the take...");
      model.set("mime", recorder.mimeType);
      model.set("take", new DataView(await blob.arrayBuffer()));
      model.save_changes();
    });
    recorder.start();
    button.textContent = "■ stop";
    say("recording: say a whole sentence, then stop");
  });
  el.classList.add("ser-recorder");
  el.append(button, status);
}
export default { render };
"""

RECORDER_CSS = """
.ser-recorder { display: flex; gap: 0.8em; align-items: center; margin: 0.3em 0; }
.ser-recorder-button { padding: 0.3em 1em; font-size: 1em; cursor: pointer; }
"""

#: The file name ending of a take, from the MediaRecorder's MIME type (what the decoder is told).
SUFFIXES = {"audio/webm": ".webm", "video/webm": ".webm", "audio/ogg": ".ogg", "audio/mp4": ".m4a",
            "video/mp4": ".mp4", "audio/wav": ".wav"}


def _bytes_from_json(value: Any, widget: Any) -> bytes:
    return b"" if value is None else bytes(value)  # the front end sends a binary buffer (a memoryview)


class Recorder(anywidget.AnyWidget):
    """Record / stop in the browser; ``take`` holds the last take's bytes, ``mime`` their type, ``message``
    the status line (the front end's and the kernel's), ``heard`` the last take's prediction."""

    _esm = RECORDER_JS
    _css = RECORDER_CSS
    take = traitlets.Bytes(b"").tag(sync=True, from_json=_bytes_from_json)
    mime = traitlets.Unicode("").tag(sync=True)
    message = traitlets.Unicode("press record, allow the microphone, say a sentence, press stop").tag(sync=True)
    heard = traitlets.Dict({}).tag(sync=True)
    takes = traitlets.Int(0).tag(sync=True)


def take_name(mime: str, number: int) -> str:
    """``take 1.webm``: the take's number and the ending its MIME type names (WebM when unknown)."""
    return f"take {number}{SUFFIXES.get(mime.split(';')[0].strip().lower(), '.webm')}"


def recorder_panel(predictor: Predictor, synthetic: bool = False) -> Any:
    """The recorder above a result area: each take is played back, predicted and charted like an upload."""
    import ipywidgets as widgets

    from ser_utils.predict import view

    recorder = Recorder()
    out = widgets.Output()
    out.add_class(RECORDER_RESULT_CLASS)

    def on_take(change: dict) -> None:
        if not change["new"]:
            return
        recorder.takes += 1
        name = take_name(recorder.mime, recorder.takes)
        with out:
            out.clear_output(wait=True)
            table = view.show_recording(predictor, name, change["new"], synthetic)
        row = table.iloc[0]
        if row["error"]:
            recorder.heard, recorder.message = {}, row["error"]
            return
        probs = {c: round(float(row[f"p_{c}"]), 4) for c in predictor.classes}
        recorder.heard = {"take": name, "emotion": row["emotion"], "predicted": row["predicted"],
                          "probabilities": probs, "speech_s": round(float(row["speech_s"]), 2)}
        recorder.message = (f"{name}: heard as {row['emotion']} ({probs[row['predicted']]:.2f})"
                            f"{view.corpus_note(synthetic)}")

    recorder.observe(on_take, names="take")
    return widgets.VBox([recorder, out])


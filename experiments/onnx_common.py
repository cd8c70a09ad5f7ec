"""What the ONNX experiments share: one fine-tune of pretrained:emotion-ravdess as `finetune export` wraps
it, exported with dynamic batch and length, and an onnxruntime session on one thread."""
import onnxruntime as ort
import torch

from w2v2.emotion.exported import _Logits
from w2v2.emotion.members import checkpoint_spec, load_classifier

NAMES = dict(input_names=["wave", "padding_mask"], output_names=["logits"])


def fine_tune() -> torch.nn.Module:
    """pretrained:emotion-ravdess member_1 giving logits of (wave, padding_mask), in eval mode."""
    model, _ = load_classifier(checkpoint_spec("pretrained:emotion-ravdess") / "member_1")
    return _Logits(model.eval()).eval()


def export(net: torch.nn.Module, path: str, **options) -> None:
    """torch.onnx.export(dynamo=True) as `finetune export` calls it, batch and length dynamic."""
    batch, length = torch.export.Dim("batch", min=1, max=1024), torch.export.Dim("samples", min=400, max=16000 * 600)
    example = (torch.randn(2, 48000), torch.zeros(2, 48000, dtype=torch.bool))
    torch.onnx.export(net, example, path, dynamo=True, external_data=False,
                      dynamic_shapes=({0: batch, 1: length}, {0: batch, 1: length}), **NAMES, **options)


def session(path: str, mem_pattern: bool = True, arena: bool = True, config: dict | None = None
            ) -> ort.InferenceSession:
    """An onnxruntime CPU session on one thread, with these options (onnxruntime's defaults unless given)."""
    o = ort.SessionOptions()
    o.intra_op_num_threads, o.inter_op_num_threads = 1, 1
    o.enable_mem_pattern, o.enable_cpu_mem_arena = mem_pattern, arena
    for k, v in (config or {}).items():
        o.add_session_config_entry(k, v)
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])

"""PyTorch (and ONNX) interop for cifar10-rs checkpoints; see docs/interop.md.

Builds the equivalent PyTorch module of each registered model (cnn-dnn: reference_seed.CnnDnn; airbench94:
airbench94_torch.make_net), loads one of our safetensors checkpoints into it (same tensor names: PyTorch
state_dict keys) using the checkpoint's own metadata (model, model_args, normalize, class_names), and:

    # evaluate on the CIFAR-10 test set (same TTA semantics as `cifar evaluate`)
    python3 bench/interop_torch.py eval --checkpoint runs/x/best.safetensors [--tta none|mirror|mirror-shift]
    # export ONNX; with onnxruntime installed, compare its probabilities with PyTorch's (and with
    # `cifar predict --json --top-k 10` output on the same files when --rust-json is given)
    python3 bench/interop_torch.py onnx --checkpoint runs/x/best.safetensors --out /tmp/model.onnx \
        [--images DIR --rust-json predict.jsonl]
    # write the 10,000 test images as 32x32 PNG files DIR/<class>/<index>.png
    python3 bench/interop_torch.py export-png --out /tmp/cifar_test_png
    # Pillow + torchvision transforms + PyTorch on a folder (the reference for `cifar predict`'s speed)
    python3 bench/interop_torch.py predict --checkpoint runs/x/best.safetensors /tmp/cifar_test_png
    # accuracy of `cifar predict --json` output on an exported folder (the class is the parent folder's name)
    python3 bench/interop_torch.py accuracy predict.jsonl

Needs: torch, numpy, safetensors; predict/export-png: pillow, torchvision; onnx: onnx (+ onnxruntime to compare).
"""
import argparse, json, os, sys, time
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_seed  # noqa: E402
import airbench94_torch  # noqa: E402

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FORMAT_VERSION = 2
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


# ---------------------------------------------------------------------------------------------- checkpoints

def read_meta(path):
    """The checkpoint's metadata with the same defaults as model::checkpoint::ModelMeta."""
    from safetensors import safe_open
    with safe_open(path, framework="pt") as f:
        raw = f.metadata() or {}
    fmt = raw.get("format", "cifar10-rs/1")
    if not fmt.startswith("cifar10-rs/") or int(fmt.split("/", 1)[1]) > FORMAT_VERSION:
        raise SystemExit(f"{path}: checkpoint format {fmt!r}: this script reads cifar10-rs/1..{FORMAT_VERSION}")
    norm = json.loads(raw.get("normalize", '{"mean":[0.5,0.5,0.5],"std":[0.5,0.5,0.5]}'))
    return {
        "model": raw.get("model", "cnn-dnn"),
        "model_args": json.loads(raw.get("model_args", "{}")),
        "mean": norm["mean"], "std": norm["std"],
        "class_names": json.loads(raw.get("class_names", json.dumps(CIFAR10_CLASSES))),
        "input_size": json.loads(raw.get("input_size", "[3,32,32]")),
        "defaulted": [k for k in ("model", "model_args", "normalize", "class_names", "input_size") if k not in raw],
    }


def build(meta):
    """The PyTorch module of a registered model."""
    if meta["model"] == "cnn-dnn":
        return reference_seed.CnnDnn()
    if meta["model"] == "airbench94":
        widths = tuple(meta["model_args"].get("widths", airbench94_torch.WIDTHS))
        saved, airbench94_torch.WIDTHS = airbench94_torch.WIDTHS, widths
        try:
            return airbench94_torch.make_net()
        finally:
            airbench94_torch.WIDTHS = saved
    raise SystemExit(f"no PyTorch module for model {meta['model']!r} (known: cnn-dnn, airbench94)")


def load_model(path):
    from safetensors.torch import load_file
    meta = read_meta(path)
    net = build(meta)
    state = load_file(path)
    own = net.state_dict()
    # Only the model's tensors (a last.safetensors also holds optimizer state).
    state = {k: v for k, v in state.items() if k in own}
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing:
        raise SystemExit(f"{path}: missing tensors for {meta['model']}: {missing}")
    return net.eval(), meta


def normalize(x_u8, meta):
    mean = torch.tensor(meta["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(meta["std"]).view(1, 3, 1, 1)
    return (x_u8.float() / 255.0 - mean) / std


@torch.no_grad()
def probabilities(net, x, tta):
    """Rust's train::evaluate::probabilities: none; mirror = mean of the two softmaxes; mirror-shift = airbench's
    6-view logit average."""
    if tta == "none":
        return F.softmax(net(x), 1)
    if tta == "mirror":
        return 0.5 * (F.softmax(net(x), 1) + F.softmax(net(x.flip(-1)), 1))
    return F.softmax(airbench94_torch.logits_tta(net, x, 2), 1)


def load_test(data_dir):
    raw = np.fromfile(os.path.join(data_dir, "cifar-10-batches-bin", "test_batch.bin"), dtype=np.uint8)
    raw = raw.reshape(-1, 3073)
    return torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy()), torch.from_numpy(raw[:, 0].astype(np.int64))


# ---------------------------------------------------------------------------------------------- commands

def cmd_eval(a):
    torch.set_num_threads(a.threads)
    net, meta = load_model(a.checkpoint)
    x, y = load_test(a.data_dir)
    t = time.perf_counter()
    correct, loss = 0, 0.0
    for i in range(0, len(y), a.batch_size):
        p = probabilities(net, normalize(x[i:i + a.batch_size], meta), a.tta)
        loss += -torch.log(p.clamp_min(1e-30)).gather(1, y[i:i + a.batch_size, None]).sum().item()
        correct += (p.argmax(1) == y[i:i + a.batch_size]).sum().item()
    print(json.dumps({"checkpoint": a.checkpoint, "model": meta["model"], "tta": a.tta, "images": len(y),
                      "test_acc": correct / len(y), "test_loss": loss / len(y), "correct": correct,
                      "eval_s": round(time.perf_counter() - t, 2), "defaulted_metadata": meta["defaulted"]}))


def list_images(root):
    out = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        out += [os.path.join(d, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(out)


def pil_transform(meta):
    """Pillow + torchvision: RGB, centred square crop, antialiased bilinear resize to 32x32, normalize."""
    from torchvision import transforms as T
    from torchvision.transforms import functional as TF
    return T.Compose([
        T.Lambda(lambda im: im.convert("RGB")),
        T.Lambda(lambda im: TF.center_crop(im, [min(im.size)] * 2)),
        T.Resize((32, 32), interpolation=T.InterpolationMode.BILINEAR, antialias=True),
        T.ToTensor(),
        T.Normalize(meta["mean"], meta["std"]),
    ])


class Folder(torch.utils.data.Dataset):
    def __init__(self, files, transform):
        self.files, self.transform = files, transform

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from PIL import Image, ImageOps
        with Image.open(self.files[i]) as im:
            return self.transform(ImageOps.exif_transpose(im))


def cmd_predict(a):
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    net, meta = load_model(a.checkpoint)
    files = list_images(a.folder)
    loader = torch.utils.data.DataLoader(Folder(files, pil_transform(meta)), batch_size=a.batch_size,
                                         num_workers=a.workers)
    probs, infer_s = [], 0.0
    for x in loader:
        t = time.perf_counter()
        probs.append(probabilities(net, x, a.tta))
        infer_s += time.perf_counter() - t
    p = torch.cat(probs)
    total = time.perf_counter() - t0
    names = meta["class_names"]
    labels = [os.path.basename(os.path.dirname(f)) for f in files]
    known = [i for i, l in enumerate(labels) if l in names]
    acc = (sum(int(p[i].argmax()) == names.index(labels[i]) for i in known) / len(known)) if known else None
    if a.json_out:
        with open(a.json_out, "w") as f:
            for fn, row in zip(files, p.tolist()):
                top = sorted(range(len(row)), key=lambda k: (-row[k], k))
                f.write(json.dumps({"file": fn, "top": [{"class": names[k], "index": k, "probability": row[k]}
                                                        for k in top]}) + "\n")
    print(json.dumps({"bench": "predict-folder", "impl": "pytorch+pillow+torchvision", "images": len(files),
                      "total_s": round(total, 2), "images_per_s": round(len(files) / total, 1),
                      "inference_s": round(infer_s, 2), "threads": a.threads, "workers": a.workers,
                      "accuracy_by_folder": acc, "torch": torch.__version__}))


def cmd_export_png(a):
    from PIL import Image
    x, y = load_test(a.data_dir)
    n = a.limit or len(y)
    for c in CIFAR10_CLASSES:
        os.makedirs(os.path.join(a.out, c), exist_ok=True)
    for i in range(n):
        img = Image.fromarray(x[i].permute(1, 2, 0).numpy(), "RGB")
        img.save(os.path.join(a.out, CIFAR10_CLASSES[int(y[i])], f"{i:05d}.png"))
    print(json.dumps({"written": n, "out": a.out}))


def cmd_accuracy(a):
    right = total = failed = 0
    with open(a.jsonl) as f:
        for line in f:
            r = json.loads(line)
            if "error" in r:
                failed += 1
                continue
            label = os.path.basename(os.path.dirname(r["file"]))
            total += 1
            right += r["top"][0]["class"] == label
    print(json.dumps({"file": a.jsonl, "images": total, "correct": right, "accuracy": right / max(total, 1),
                      "failed": failed}))


def cmd_onnx(a):
    net, meta = load_model(a.checkpoint)
    x = torch.zeros(1, *meta["input_size"])
    torch.onnx.export(net, (x,), a.out, input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    out = {"onnx": a.out, "model": meta["model"], "bytes": os.path.getsize(a.out),
           "input": "image [N,3,32,32] f32, normalized with the checkpoint's mean/std", "output": "logits [N,10]"}
    try:
        import onnxruntime as ort
    except ImportError:
        out["onnxruntime"] = "not installed: no comparison"
        print(json.dumps(out))
        return
    sess = ort.InferenceSession(a.out, providers=["CPUExecutionProvider"])
    if a.images:
        from PIL import Image
        files = list_images(a.images)[:a.count]
        batch = torch.stack([pil_transform(meta)(Image.open(f)) for f in files])
    else:
        files = None
        xt, _ = load_test(a.data_dir)
        batch = normalize(xt[:a.count], meta)
    p_ort = torch.from_numpy(sess.run(None, {"image": batch.numpy()})[0]).softmax(1)
    with torch.no_grad():
        p_torch = net(batch).softmax(1)
    out["images"] = len(batch)
    out["max_abs_diff_prob_ort_vs_torch"] = float((p_ort - p_torch).abs().max())
    out["same_top1_ort_vs_torch"] = int((p_ort.argmax(1) == p_torch.argmax(1)).sum())
    if a.rust_json and files:
        rust = {}
        with open(a.rust_json) as f:
            for line in f:
                r = json.loads(line)
                if "top" in r:
                    row = [0.0] * len(meta["class_names"])
                    for t in r["top"]:
                        row[t["index"]] = t["probability"]
                    rust[os.path.abspath(r["file"])] = row
        p_rust = torch.tensor([rust[os.path.abspath(f)] for f in files])
        out["max_abs_diff_prob_ort_vs_rust"] = float((p_ort - p_rust).abs().max())
        out["same_top1_ort_vs_rust"] = int((p_ort.argmax(1) == p_rust.argmax(1)).sum())
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("eval", help="evaluate a checkpoint on the test set")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data-dir", default="data")
    e.add_argument("--tta", choices=("none", "mirror", "mirror-shift"), default="none")
    e.add_argument("--batch-size", type=int, default=512)
    e.add_argument("--threads", type=int, default=2)
    p = sub.add_parser("predict", help="Pillow + torchvision + PyTorch on a folder of images (speed, accuracy)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("folder")
    p.add_argument("--tta", choices=("none", "mirror", "mirror-shift"), default="none")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes decoding images")
    p.add_argument("--json-out", help="write one JSON line per image (the layout of `cifar predict --json`)")
    x = sub.add_parser("export-png", help="write the test set as 32x32 PNG files OUT/<class>/<index>.png")
    x.add_argument("--data-dir", default="data")
    x.add_argument("--out", required=True)
    x.add_argument("--limit", type=int, default=0)
    c = sub.add_parser("accuracy", help="accuracy of `cifar predict --json` output on an exported folder")
    c.add_argument("jsonl")
    o = sub.add_parser("onnx", help="export ONNX (and compare with onnxruntime when installed)")
    o.add_argument("--checkpoint", required=True)
    o.add_argument("--out", required=True)
    o.add_argument("--data-dir", default="data")
    o.add_argument("--images", help="compare on the images of this folder (else the first test images)")
    o.add_argument("--count", type=int, default=16)
    o.add_argument("--rust-json", help="`cifar predict --json --top-k 10` output on --images, to compare with")
    a = ap.parse_args()
    {"eval": cmd_eval, "predict": cmd_predict, "export-png": cmd_export_png, "accuracy": cmd_accuracy,
     "onnx": cmd_onnx}[a.cmd](a)


if __name__ == "__main__":
    main()

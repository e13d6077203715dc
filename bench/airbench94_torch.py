"""airbench94 in PyTorch on the CPU in fp32, for side-by-side comparison with the Rust `airbench94` model.

The network and training recipe follow Keller Jordan's airbench94 (github.com/KellerJordan/cifar10-airbench,
legacy/airbench94.py, MIT licence); this file re-implements them for the CPU, in fp32, written for this project.

Network (nn.Sequential, so the state_dict keys are `0.weight`, `0.bias`, `2.conv1.weight`, `2.norm1.bias`, ...,
`7.weight`):

    0 Conv2d(3, 24, 2, padding=0, bias=True)   whitening filters from the training images, weight frozen,
                                               bias trained for the first 3 epochs only
    1 GELU
    2 ConvGroup(24, 64)  3 ConvGroup(64, 256)  4 ConvGroup(256, 256)
          conv1 3x3 same, no bias -> MaxPool2d(2) -> norm1 -> GELU -> conv2 3x3 -> norm2 -> GELU
          BatchNorm eps 1e-12, momentum 0.4 (PyTorch's convention), weight frozen at 1, bias trained
    5 MaxPool2d(3)  6 Flatten  7 Linear(256, 10, bias=False)  8 Mul(1/9)

Modes:

    # full run (9.9 epochs, 476 steps of 1024) on the binary archive, read in place
    python3 bench/airbench94_torch.py --archive path/to/cifar-10-binary.tar.gz --seed 0 --threads 2
    # training smoke test: 2 steps, a small test subset
    python3 bench/airbench94_torch.py --limit-train 2048 --epochs 1 --limit-test 512
    # step throughput (JSON lines for `cargo xtask bench`): real augmented batches of the archive when it exists,
    # each step timed after --warmup untimed ones; NCHW and channels_last, plus torch.compile rows on request
    python3 bench/airbench94_torch.py --bench --batch 1024,256 --steps 12 --compile-layouts channels_last
    # the same on a GPU (bench/gpu_check.sh): --device cuda, and --no-tf32 for plain f32 convolutions
    python3 bench/airbench94_torch.py --bench --device cuda --archive none --no-tf32
    # evaluate a checkpoint written by the Rust side (safetensors, same keys)
    python3 bench/airbench94_torch.py --load-safetensors runs/x/model.safetensors

PyTorch's allocator matters here: run it as `cargo xtask bench` does (jemalloc preloaded, decay off; see
docs/performance.md), e.g. LD_PRELOAD=path/to/libjemalloc.so.2 MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1.
Every JSON row names the allocator the process actually runs with.

Needs: torch, numpy (and safetensors for --load-safetensors / --save-safetensors).
"""
import argparse, json, math, os, resource, sys, tarfile, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MODEL = "airbench94"
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)

# Hyperparameters of the recipe.
EPOCHS = 9.9
BATCH = 1024
LR = 11.5
MOMENTUM = 0.85
WEIGHT_DECAY = 0.0153
BIAS_SCALER = 64.0
LABEL_SMOOTHING = 0.2
WHITEN_BIAS_EPOCHS = 3
TRANSLATE = 2
WIDTHS = (64, 256, 256)
BN_MOMENTUM = 0.4  # PyTorch convention: running = (1 - m) * running + m * batch
BN_EPS = 1e-12
SCALE = 1 / 9
WHITEN_EPS = 5e-4
WHITEN_IMAGES = 5000
WARMUP_FRAC = 0.23
LOOKAHEAD_EVERY = 5


# ---------------------------------------------------------------------------------------------- network

class Mul(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return x * self.scale


def batch_norm(ch):
    bn = nn.BatchNorm2d(ch, eps=BN_EPS, momentum=BN_MOMENTUM)
    bn.weight.requires_grad_(False)  # stays at 1
    return bn


def conv3x3(c_in, c_out):
    conv = nn.Conv2d(c_in, c_out, 3, padding="same", bias=False)
    # PyTorch's default init, then the first c_in filters become identities.
    with torch.no_grad():
        nn.init.dirac_(conv.weight[:c_in])
    return conv


class ConvGroup(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv1 = conv3x3(c_in, c_out)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = batch_norm(c_out)
        self.conv2 = conv3x3(c_out, c_out)
        self.norm2 = batch_norm(c_out)
        self.activ = nn.GELU()

    def forward(self, x):
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        return self.activ(self.norm2(self.conv2(x)))


def make_net():
    whiten_width = 2 * 3 * 2 * 2
    net = nn.Sequential(
        nn.Conv2d(3, whiten_width, 2, padding=0, bias=True),
        nn.GELU(),
        ConvGroup(whiten_width, WIDTHS[0]),
        ConvGroup(WIDTHS[0], WIDTHS[1]),
        ConvGroup(WIDTHS[1], WIDTHS[2]),
        nn.MaxPool2d(3),
        nn.Flatten(),
        nn.Linear(WIDTHS[2], 10, bias=False),
        Mul(SCALE),
    )
    net[0].weight.requires_grad_(False)
    return net


def param_counts(net):
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in net.parameters() if not p.requires_grad)
    buffers = sum(b.numel() for n, b in net.named_buffers() if not n.endswith("num_batches_tracked"))
    return {"model": MODEL, "params_trainable": trainable, "params_frozen": frozen,
            "buffers_float": buffers, "state_dict_float": trainable + frozen + buffers}


@torch.no_grad()
def init_whitening(conv, images):
    """Filters that whiten the 2x2x3 patches of `images` (normalised, NCHW), and their negatives."""
    c, (h, w) = images.shape[1], conv.weight.shape[2:]
    patches = images.unfold(2, h, 1).unfold(3, w, 1)             # N, C, H', W', h, w
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * h * w).double()
    cov = patches.T @ patches / patches.shape[0]                 # uncentred
    eigval, eigvec = torch.linalg.eigh(cov)                      # ascending
    eigval, eigvec = eigval.flip(0), eigvec.T.flip(0)            # rows = eigenvectors, descending
    filters = (eigvec / torch.sqrt(eigval + WHITEN_EPS)[:, None]).reshape(-1, c, h, w)
    conv.weight.copy_(torch.cat((filters, -filters)).float())


# ---------------------------------------------------------------------------------------------- data

def load(archive):
    """(train, test) as (uint8 N,3,32,32, int64 N) from the CIFAR-10 binary tar.gz, without extracting it."""
    parts = {}
    with tarfile.open(archive, "r:gz") as tf:
        for m in tf.getmembers():
            name = m.name.rsplit("/", 1)[-1]
            if name.endswith(".bin") and (name.startswith("data_batch_") or name == "test_batch.bin"):
                parts[name] = np.frombuffer(tf.extractfile(m).read(), dtype=np.uint8).reshape(-1, 3073)
    split = lambda r: (torch.from_numpy(r[:, 1:].reshape(-1, 3, 32, 32).copy()),
                       torch.from_numpy(r[:, 0].astype(np.int64)))
    train = np.concatenate([parts[f"data_batch_{i}.bin"] for i in range(1, 6)])
    return split(train), split(parts["test_batch.bin"])


def normalize(x_u8):
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x_u8.float() / 255.0 - mean) / std


def random_flip(x):
    mask = (torch.rand(len(x)) < 0.5).view(-1, 1, 1, 1)
    return torch.where(mask, x.flip(-1), x)


def random_translate(padded, size, r):
    """A random size x size window of each padded image, offsets in [-r, r] around the centre."""
    shifts = torch.randint(-r, r + 1, (len(padded), 2))
    out = torch.empty(len(padded), padded.shape[1], size, size, dtype=padded.dtype)
    for sy in range(-r, r + 1):
        for sx in range(-r, r + 1):
            mask = (shifts[:, 0] == sy) & (shifts[:, 1] == sx)
            out[mask] = padded[mask, :, r + sy:r + sy + size, r + sx:r + sx + size]
    return out


class TrainLoader:
    """Epoch 0 flips a random half of the set once and reflect-pads it; every epoch then takes a random
    translation, flips the whole set on odd epochs, and yields shuffled full batches (the last partial one
    is dropped)."""

    def __init__(self, x_u8, y, batch):
        self.y, self.batch, self.epoch = y, batch, 0
        self.padded = F.pad(random_flip(normalize(x_u8)), (TRANSLATE,) * 4, mode="reflect")

    def __len__(self):
        return len(self.y) // self.batch

    def __iter__(self):
        images = random_translate(self.padded, 32, TRANSLATE)
        if self.epoch % 2 == 1:
            images = images.flip(-1)
        self.epoch += 1
        order = torch.randperm(len(images))
        for i in range(len(self)):
            idx = order[i * self.batch:(i + 1) * self.batch]
            yield images[idx], self.y[idx]


# ---------------------------------------------------------------------------------------------- inference

def logits_mirror(net, x):
    return 0.5 * net(x) + 0.5 * net(x.flip(-1))


def logits_tta(net, x, level):
    """Level 0: the image; 1: + its mirror; 2: + mirrored views shifted by one pixel (reflect padding)."""
    if level == 0:
        return net(x)
    mirror = logits_mirror(net, x)
    if level == 1:
        return mirror
    padded = F.pad(x, (1,) * 4, mode="reflect")
    shifted = [logits_mirror(net, padded[:, :, 0:32, 0:32]), logits_mirror(net, padded[:, :, 2:34, 2:34])]
    return 0.5 * mirror + 0.5 * torch.stack(shifted).mean(0)


@torch.no_grad()
def evaluate(net, x_u8, y, tta_level, memory_format, bs=1000):
    net.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(y), bs):
        x = normalize(x_u8[i:i + bs]).contiguous(memory_format=memory_format)
        out = logits_tta(net, x, tta_level)
        loss += F.cross_entropy(out, y[i:i + bs], reduction="sum").item()
        correct += (out.argmax(1) == y[i:i + bs]).sum().item()
    return correct / len(y), loss / len(y)


# ---------------------------------------------------------------------------------------------- training

def make_optimizer(net, total_steps):
    kilostep_scale = 1024 * (1 + 1 / (1 - MOMENTUM))
    lr = LR / kilostep_scale
    wd = WEIGHT_DECAY * BATCH / kilostep_scale
    lr_norm = lr * BIAS_SCALER
    named = list(net.named_parameters())
    # The whitening bias is listed even though its gradient stops after WHITEN_BIAS_EPOCHS: SGD skips
    # parameters whose .grad is None (weight decay included).
    norm = [p for n, p in named if "norm" in n and p.requires_grad]
    other = [p for n, p in named if "norm" not in n and p.requires_grad]
    opt = torch.optim.SGD([dict(params=norm, lr=lr_norm, weight_decay=wd / lr_norm),
                           dict(params=other, lr=lr, weight_decay=wd / lr)],
                          momentum=MOMENTUM, nesterov=True)
    warmup = int(WARMUP_FRAC * total_steps)

    def factor(step):
        if step < warmup:
            f = step / warmup
            return 0.2 * (1 - f) + 1.0 * f
        f = (step - warmup) / max(total_steps - warmup, 1)
        return 1.0 * (1 - f) + 0.07 * f

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


class Lookahead:
    """An EMA of every float state_dict entry that the network is reset to at each update."""

    def __init__(self, net):
        self.ema = {k: v.detach().clone() for k, v in net.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, net, decay):
        for k, p in net.state_dict().items():
            if k in self.ema:
                self.ema[k].lerp_(p, 1 - decay)
                p.copy_(self.ema[k])


def train(a):
    torch.manual_seed(a.seed)
    mf = torch.channels_last if a.channels_last else torch.contiguous_format
    t_load = time.perf_counter()
    (xtr, ytr), (xte, yte) = load(a.archive)
    if a.limit_train:
        xtr, ytr = xtr[:a.limit_train], ytr[:a.limit_train]
    if a.limit_test:
        xte, yte = xte[:a.limit_test], yte[:a.limit_test]
    load_s = time.perf_counter() - t_load

    t0 = time.perf_counter()
    net = make_net()
    print(json.dumps(param_counts(net)), flush=True)
    init_whitening(net[0], normalize(xtr[:WHITEN_IMAGES]))
    net = net.to(memory_format=mf)
    model = torch.compile(net, dynamic=False) if a.compile else net
    loader = TrainLoader(xtr, ytr, a.batch_size)
    total = math.ceil(len(loader) * a.epochs)
    opt, sched = make_optimizer(net, total)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING, reduction="sum")
    lookahead = Lookahead(net)
    decay_at = lambda s: 0.95 ** 5 * (s / total) ** 3
    step, train_s, eval_s = 0, 0.0, 0.0
    for epoch in range(math.ceil(a.epochs)):
        te = time.perf_counter()
        net[0].bias.requires_grad_(epoch < WHITEN_BIAS_EPOCHS)
        net.train()
        tot_loss, correct, seen = 0.0, 0, 0
        for x, y in loader:
            x = x.contiguous(memory_format=mf)
            out = model(x)
            loss = loss_fn(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            tot_loss += loss.item(); correct += (out.argmax(1) == y).sum().item(); seen += len(y)
            if step % LOOKAHEAD_EVERY == 0:
                lookahead.update(net, decay_at(step))
            if step >= total:
                lookahead.update(net, 1.0)
                break
        epoch_s = time.perf_counter() - te
        train_s += epoch_s
        line = {"epoch": epoch + 1, "step": step, "train_loss": tot_loss / max(seen, 1),
                "train_acc": correct / max(seen, 1), "lr": sched.get_last_lr()[1], "epoch_s": epoch_s,
                "train_s": train_s}
        if a.epoch_eval:
            tv = time.perf_counter()
            line["test_acc"], line["test_loss"] = evaluate(model, xte, yte, 0, mf)
            eval_s += time.perf_counter() - tv
        print(json.dumps(line), flush=True)
        if step >= total:
            break

    tv = time.perf_counter()
    acc, loss = evaluate(model, xte, yte, 0, mf)
    acc_tta, loss_tta = evaluate(model, xte, yte, a.tta_level, mf)
    eval_s += time.perf_counter() - tv
    print(json.dumps({"model": MODEL, "seed": a.seed, "steps": step, "test_acc": acc, "test_loss": loss,
                      "test_acc_tta": acc_tta, "test_loss_tta": loss_tta, "tta_level": a.tta_level,
                      "train_s": train_s, "eval_s": eval_s, "load_s": load_s,
                      "total_s": time.perf_counter() - t0, "channels_last": a.channels_last,
                      "compile": "inductor" if a.compile else "eager",
                      "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      **torch_config(a.threads)}), flush=True)
    if a.save_safetensors:
        from safetensors.torch import save_file
        state = {k: v.contiguous() for k, v in net.to(memory_format=torch.contiguous_format).state_dict().items()
                 if v.is_floating_point()}
        save_file(state, a.save_safetensors)
        print(f"# saved {len(state)} tensors to {a.save_safetensors}", flush=True)


# ---------------------------------------------------------------------------------------------- modes

def torch_config(threads):
    """What this process runs with, as `cargo xtask bench` reports it per row (bench/reference_seed.py's fields:
    the allocator actually mapped, its settings, the thread counts, the versions and the vector ISA)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from reference_seed import torch_config as config
    return config(threads)


def device_config(device, no_tf32):
    """bench/reference_seed.py's, so every script reports the GPU and its TF32 settings alike."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from reference_seed import device_config as config
    return config(device, no_tf32)


def bench_batches(a, bs, n):
    """`n` training batches of `bs` (images in NCHW, labels): real augmented CIFAR-10 batches from the loader of
    the recipe when the archive is there (random data changes BatchNorm/GELU outputs and max-pool ties), else
    random normal images. Returns (batches, "cifar10" | "random")."""
    if a.archive and os.path.isfile(a.archive):
        if not hasattr(bench_batches, "train"):
            (bench_batches.train, _) = load(a.archive)
        xtr, ytr = bench_batches.train
        loader = TrainLoader(xtr, ytr, bs)
        out = []
        while len(out) < n:
            for batch in loader:
                out.append(batch)
                if len(out) == n:
                    break
        return out, "cifar10"
    if a.require_data:
        raise SystemExit(f"--bench --require-data: no archive at {a.archive}")
    g = torch.Generator().manual_seed(a.seed)
    return [(torch.randn(bs, 3, 32, 32, generator=g), torch.randint(0, 10, (bs,), generator=g))
            for _ in range(n)], "random"


def spread(rates):
    s = sorted(rates)
    return {"img_per_s": s[len(s) // 2], "img_per_s_min": s[0], "img_per_s_max": s[-1]}


def timed(fn, warmup, steps, images):
    """Runs `fn(i)` `warmup` times untimed, then `steps` times timed one by one; img/s of every step."""
    warm, rates = [], []
    for i in range(warmup):
        t = time.perf_counter()
        fn(i)
        warm.append(images / (time.perf_counter() - t))
    for i in range(steps):
        t = time.perf_counter()
        fn(warmup + i)
        rates.append(images / (time.perf_counter() - t))
    return warm, rates


def bench(a):
    """Training-step and inference throughput (JSON lines for `cargo xtask bench`): every layout of
    --layouts in eager mode, and each of --compile-layouts under torch.compile (inductor). Each row times
    --steps steps one by one after --warmup untimed ones (the first compiled step includes the compilation,
    reported apart as compile_s) and gives the median step's rate with the slowest and fastest."""
    batches = [int(b) for b in a.batch.split(",") if b]
    infer_batch = a.infer_batch or batches[0]
    config = torch_config(a.threads)
    print(json.dumps(param_counts(make_net())), flush=True)
    layouts = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
    rows = [(l, False) for l in a.layouts.split(",") if l]
    rows += [(l, True) for l in a.compile_layouts.split(",") if l]
    for layout, compiled in rows:
        if layout not in layouts:
            raise SystemExit(f"--layouts/--compile-layouts: expected nchw or channels_last, found {layout!r}")
        try:
            bench_layout(a, layout, layouts[layout], compiled, batches, infer_batch, config)
        except Exception as e:  # a torch.compile that does not work here: say so and go on with the other rows
            if not compiled:
                raise
            print(json.dumps({"bench": "train", "model": MODEL, "batch": batches[0], "layout": layout,
                              "compile": "inductor", **config, "error": f"{type(e).__name__}: {e}"[:500]}),
                  flush=True)


def bench_layout(a, layout, mf, compiled, batches, infer_batch, config):
    torch.manual_seed(a.seed)
    device = torch.device(a.device)
    base = make_net().to(device=device, memory_format=mf)
    net = torch.compile(base, dynamic=False) if compiled else base
    n_steps = a.warmup + a.steps
    total = 1000
    opt, sched = make_optimizer(base, total)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING, reduction="sum")
    lookahead = Lookahead(base)
    counter = [0]
    common = dict(model=MODEL, layout=layout, compile="inductor" if compiled else "eager",
                  warmup=a.warmup, steps=a.steps, **config)
    common.update(device_config(device, a.no_tf32))
    for bs in batches:
        data, source = bench_batches(a, bs, min(n_steps, 50_000 // bs))
        data = [(x.to(device).contiguous(memory_format=mf), y.to(device)) for x, y in data]
        base.train()

        # The step of the real training loop (train() above): forward, summed loss, SGD-Nesterov, the
        # schedule, the loss and accuracy read back, Lookahead every 5 steps.
        def step(i):
            x, y = data[i % len(data)]
            out = net(x)
            loss = loss_fn(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss.item(); (out.argmax(1) == y).sum().item()
            counter[0] += 1
            if counter[0] % LOOKAHEAD_EVERY == 0:
                lookahead.update(base, 0.95 ** 5 * (counter[0] / total) ** 3)

        # A compiled row compiles in its first step: at least that one is untimed.
        warm, rates = timed(step, max(a.warmup, 1) if compiled else a.warmup, a.steps, bs)
        row = dict(bench="train", batch=bs, data=source, **common, **spread(rates))
        if compiled:
            row["compile_s"] = bs / warm[0] - bs / row["img_per_s"] if warm else None
        row["warmup_img_per_s"] = [round(r, 1) for r in warm]
        row["step_img_per_s"] = [round(r, 1) for r in rates]
        print(json.dumps(row), flush=True)
    base.eval()
    data, source = bench_batches(a, infer_batch, 1)
    x = data[0][0].to(device).contiguous(memory_format=mf)
    for name, level in (("infer", 0), ("infer_tta", a.tta_level)):
        n = a.infer_steps if level == 0 else max(a.infer_steps // 4, 2)
        with torch.no_grad():
            warmup = max(a.infer_warmup, 1) if compiled else a.infer_warmup
            # .cpu() waits for the device, as the Rust side reads its logits back.
            warm, rates = timed(lambda _: logits_tta(net, x, level).cpu(), warmup, n, infer_batch)
        row = dict(bench=name, batch=infer_batch, tta_level=level, data=source, **common, **spread(rates))
        row["warmup"], row["steps"] = warmup, n
        if compiled:
            row["compile_s"] = infer_batch / warm[0] - infer_batch / row["img_per_s"] if warm else None
        print(json.dumps(row), flush=True)


def load_checkpoint(a):
    from safetensors.torch import load_file
    mf = torch.channels_last if a.channels_last else torch.contiguous_format
    net = make_net()
    state = load_file(a.load_safetensors)
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    print(json.dumps({"checkpoint": a.load_safetensors, "tensors": len(state),
                      "missing": missing, "unexpected": unexpected}), flush=True)
    if missing or unexpected:
        raise SystemExit("checkpoint keys do not match the airbench94 state_dict")
    net = net.to(memory_format=mf)
    (_, _), (xte, yte) = load(a.archive)
    if a.limit_test:
        xte, yte = xte[:a.limit_test], yte[:a.limit_test]
    t = time.perf_counter()
    acc, loss = evaluate(net, xte, yte, 0, mf)
    acc_tta, loss_tta = evaluate(net, xte, yte, a.tta_level, mf)
    print(json.dumps({"model": MODEL, "checkpoint": a.load_safetensors, "test_acc": acc, "test_loss": loss,
                      "test_acc_tta": acc_tta, "test_loss_tta": loss_tta, "tta_level": a.tta_level,
                      "images": len(yte), "eval_s": time.perf_counter() - t}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archive", default="../shared/data/cifar-10-binary.tar.gz")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--channels-last", action="store_true", help="train/evaluate in channels_last")
    ap.add_argument("--epochs", type=float, default=EPOCHS)
    ap.add_argument("--batch-size", type=int, default=BATCH)
    ap.add_argument("--tta-level", type=int, default=2, choices=(0, 1, 2))
    ap.add_argument("--limit-train", type=int, default=0, help="use only the first N training images")
    ap.add_argument("--limit-test", type=int, default=0, help="evaluate only the first N test images")
    ap.add_argument("--epoch-eval", action="store_true", help="also evaluate (no TTA) after every epoch")
    ap.add_argument("--save-safetensors", metavar="PATH", help="write the trained float state_dict")
    ap.add_argument("--load-safetensors", metavar="PATH", help="evaluate this checkpoint instead of training")
    ap.add_argument("--compile", action="store_true", help="train under torch.compile (inductor)")
    ap.add_argument("--bench", action="store_true",
                    help="step throughput (JSON lines): real CIFAR-10 batches when --archive exists, else random")
    ap.add_argument("--require-data", action="store_true", help="--bench: fail instead of using random data")
    ap.add_argument("--batch", default="1024,256", help="--bench: training batch sizes, comma-separated")
    ap.add_argument("--infer-batch", type=int, default=0, help="--bench: inference batch [first --batch]")
    ap.add_argument("--steps", type=int, default=10, help="--bench: timed training steps per row")
    ap.add_argument("--warmup", type=int, default=6, help="--bench: untimed training steps first")
    ap.add_argument("--infer-steps", type=int, default=12, help="--bench: timed inference batches (TTA: a quarter)")
    ap.add_argument("--infer-warmup", type=int, default=3, help="--bench: untimed inference batches first")
    ap.add_argument("--layouts", default="nchw,channels_last", help="--bench: eager layouts, comma-separated")
    ap.add_argument("--no-tf32", action="store_true",
                    help="--bench on cuda: plain f32 convolutions (PyTorch's default lets cuDNN use TF32)")
    ap.add_argument("--device", default="cpu",
                    help="--bench: cpu or cuda[:N] (steps end with the loss read back, so host timing holds)")
    ap.add_argument("--compile-layouts", default="",
                    help="--bench: layouts also measured under torch.compile (inductor), e.g. channels_last")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.bench:
        return bench(a)
    if a.load_safetensors:
        return load_checkpoint(a)
    train(a)


if __name__ == "__main__":
    main()

"""airbench94_muon in PyTorch on the CPU in fp32, for side-by-side comparison with the Rust `airbench94-muon` preset.

The recipe follows Keller Jordan's airbench94_muon.py (github.com/KellerJordan/cifar10-airbench, MIT licence); this
file re-implements it for the CPU, in fp32 (the Newton-Schulz iteration too, unless --ns-bf16), written for this
project. Network: airbench94's (whitening conv 3->24 2x2, three ConvGroups 64/256/256, MaxPool 3, Linear(256, 10,
no bias) / 256 with the head weight scaled to std 1). Optimizers: Muon (lr 0.24, momentum 0.6 Nesterov, 3 quintic
Newton-Schulz iterations, filters renormalised to norm sqrt(out channels) before each update) on the conv filters;
SGD-Nesterov 0.85 on the whitening bias (lr 0.053, decaying to 0 over its 3 training epochs), the BatchNorm biases
(0.053) and the head (0.67), weight decay 2e-6 * batch / lr per group; batch 2000, 8 epochs, every rate
initial * (1 - step / total), summed cross-entropy with label smoothing 0.2; alternating flip + 2-pixel reflect
translate; 6-view TTA (level 2).

Modes:

    # full run (8 epochs, 200 steps of 2000) on the binary archive, read in place
    python3 bench/airbench94_muon_torch.py --archive path/to/cifar-10-binary.tar.gz --seed 0 --threads 2
    # the Rust preset's length (7 epochs, 175 steps; `cargo xtask bench --whole-run` passes our run's own)
    python3 bench/airbench94_muon_torch.py --archive path/to/cifar-10-binary.tar.gz --seed 0 --epochs 7
    # throughput on real (or random) batches: JSON lines, as bench/airbench94_torch.py --bench writes them
    python3 bench/airbench94_muon_torch.py --bench --batch 2000 --steps 3
    # the Muon parity fixture read by crates/train/tests/muon_parity.rs (no data needed)
    python3 bench/airbench94_muon_torch.py --trace crates/train/tests/fixtures/muon_trace.json

Needs: torch, numpy.
"""
import argparse, json, math, os, resource, sys, tarfile, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MODEL = "airbench94-muon"
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)

EPOCHS = 8
BATCH = 2000
BIAS_LR = 0.053
HEAD_LR = 0.67
WD_PER_EXAMPLE = 2e-6
SGD_MOMENTUM = 0.85
MUON_LR = 0.24
MUON_MOMENTUM = 0.6
NS_STEPS = 3
NS_COEFFS = (3.4445, -4.7750, 2.0315)
LABEL_SMOOTHING = 0.2
WHITEN_BIAS_EPOCHS = 3
TRANSLATE = 2
WIDTHS = (64, 256, 256)
BN_MOMENTUM = 0.4  # PyTorch convention: running = (1 - m) * running + m * batch
BN_EPS = 1e-12
WHITEN_EPS = 5e-4
WHITEN_IMAGES = 5000


# ---------------------------------------------------------------------------------------------- Muon

def zeropower_via_newtonschulz5(G, steps=NS_STEPS, eps=1e-7, dtype=torch.float32):
    """The script's quintic Newton-Schulz orthogonalisation (in `dtype`; the script uses bfloat16 on the GPU)."""
    assert G.dim() == 2
    a, b, c = NS_COEFFS
    X = G.to(dtype)
    X = X / (X.norm() + eps)
    if G.size(0) > G.size(1):
        X = X.T
    for _ in range(steps):
        A = X @ X.T
        B = b * A + c * A @ A
        X = a * X + B @ X
    if G.size(0) > G.size(1):
        X = X.T
    return X.to(G.dtype)


class Muon(torch.optim.Optimizer):
    """airbench94_muon.py's Muon, with the Newton-Schulz dtype a setting."""

    def __init__(self, params, lr=1e-3, momentum=0.0, nesterov=False, ns_dtype=torch.float32):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov))
        self.ns_dtype = ns_dtype

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(g)
                buf = state["momentum_buffer"]
                buf.mul_(momentum).add_(g)
                g = g.add(buf, alpha=momentum) if group["nesterov"] else buf
                p.data.mul_(len(p.data) ** 0.5 / p.data.norm())
                update = zeropower_via_newtonschulz5(g.reshape(len(g), -1), dtype=self.ns_dtype).view(g.shape)
                p.data.add_(update, alpha=-lr)


# ---------------------------------------------------------------------------------------------- network

class BatchNorm(nn.BatchNorm2d):
    def __init__(self, c):
        super().__init__(c, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.weight.requires_grad = False


class Conv(nn.Conv2d):
    def __init__(self, cin, cout):
        super().__init__(cin, cout, kernel_size=3, padding="same", bias=False)

    def reset_parameters(self):
        super().reset_parameters()
        w = self.weight.data
        torch.nn.init.dirac_(w[:w.size(1)])


class ConvGroup(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1, self.pool, self.norm1 = Conv(cin, cout), nn.MaxPool2d(2), BatchNorm(cout)
        self.conv2, self.norm2, self.activ = Conv(cout, cout), BatchNorm(cout), nn.GELU()

    def forward(self, x):
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        return self.activ(self.norm2(self.conv2(x)))


class CifarNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.whiten = nn.Conv2d(3, 24, 2, padding=0, bias=True)
        self.whiten.weight.requires_grad = False
        self.layers = nn.Sequential(nn.GELU(), ConvGroup(24, WIDTHS[0]), ConvGroup(WIDTHS[0], WIDTHS[1]),
                                    ConvGroup(WIDTHS[1], WIDTHS[2]), nn.MaxPool2d(3))
        self.head = nn.Linear(WIDTHS[2], 10, bias=False)
        with torch.no_grad():
            self.head.weight.mul_(1 / self.head.weight.std())

    @torch.no_grad()
    def init_whiten(self, images):
        c, (h, w) = images.shape[1], self.whiten.weight.shape[2:]
        patches = images.unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3).reshape(-1, c, h, w).float()
        flat = patches.view(len(patches), -1)
        cov = flat.T @ flat / len(flat)
        eigval, eigvec = torch.linalg.eigh(cov, UPLO="U")
        scaled = eigvec.T.reshape(-1, c, h, w) / torch.sqrt(eigval.view(-1, 1, 1, 1) + WHITEN_EPS)
        self.whiten.weight.data[:] = torch.cat((scaled, -scaled))

    def forward(self, x, whiten_bias_grad=True):
        b = self.whiten.bias
        x = F.conv2d(x, self.whiten.weight, b if whiten_bias_grad else b.detach())
        x = self.layers(x).flatten(1)
        return self.head(x) / x.size(-1)


def make_optimizers(net, batch, ns_dtype):
    wd = WD_PER_EXAMPLE * batch
    filters = [p for p in net.parameters() if p.dim() == 4 and p.requires_grad]
    norm_biases = [p for n, p in net.named_parameters() if "norm" in n and p.requires_grad]
    sgd = torch.optim.SGD([dict(params=[net.whiten.bias], lr=BIAS_LR, weight_decay=wd / BIAS_LR),
                           dict(params=norm_biases, lr=BIAS_LR, weight_decay=wd / BIAS_LR),
                           dict(params=[net.head.weight], lr=HEAD_LR, weight_decay=wd / HEAD_LR)],
                          momentum=SGD_MOMENTUM, nesterov=True)
    muon = Muon(filters, lr=MUON_LR, momentum=MUON_MOMENTUM, nesterov=True, ns_dtype=ns_dtype)
    for opt in (sgd, muon):
        for g in opt.param_groups:
            g["initial_lr"] = g["lr"]
    return sgd, muon


def set_lrs(sgd, muon, step, total, whiten_steps):
    for g in sgd.param_groups[:1]:
        g["lr"] = g["initial_lr"] * (1 - step / whiten_steps)
    for g in sgd.param_groups[1:] + muon.param_groups:
        g["lr"] = g["initial_lr"] * (1 - step / total)


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


def random_translate(padded, size, r):
    shifts = torch.randint(-r, r + 1, (len(padded), 2))
    out = torch.empty(len(padded), padded.shape[1], size, size, dtype=padded.dtype)
    for sy in range(-r, r + 1):
        for sx in range(-r, r + 1):
            mask = (shifts[:, 0] == sy) & (shifts[:, 1] == sx)
            out[mask] = padded[mask, :, r + sy:r + sy + size, r + sx:r + sx + size]
    return out


class TrainLoader:
    """The script's loader: epoch 0 flips a random half once (then reflect-pads); every epoch a random 2-pixel
    translation, the whole set flipped on odd epochs, shuffled full batches."""

    def __init__(self, x_u8, y, batch):
        self.y, self.batch, self.epoch = y, batch, 0
        x = normalize(x_u8)
        mask = (torch.rand(len(x)) < 0.5).view(-1, 1, 1, 1)
        self.padded = F.pad(torch.where(mask, x.flip(-1), x), (TRANSLATE,) * 4, mode="reflect")

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


# ---------------------------------------------------------------------------------------------- evaluation

def logits_mirror(net, x):
    return 0.5 * net(x) + 0.5 * net(x.flip(-1))


def logits_tta(net, x, level):
    if level == 0:
        return net(x)
    mirror = logits_mirror(net, x)
    if level == 1:
        return mirror
    padded = F.pad(x, (1,) * 4, mode="reflect")
    shifted = [logits_mirror(net, padded[:, :, 0:32, 0:32]), logits_mirror(net, padded[:, :, 2:34, 2:34])]
    return 0.5 * mirror + 0.5 * torch.stack(shifted).mean(0)


@torch.no_grad()
def evaluate(net, x_u8, y, level, memory_format, bs=2000):
    net.eval()
    correct = 0
    for i in range(0, len(y), bs):
        x = normalize(x_u8[i:i + bs]).contiguous(memory_format=memory_format)
        correct += (logits_tta(net, x, level).argmax(1) == y[i:i + bs]).sum().item()
    return correct / len(y)


# ---------------------------------------------------------------------------------------------- modes

def train(a):
    torch.manual_seed(a.seed)
    mf = torch.channels_last if a.channels_last else torch.contiguous_format
    t0 = time.perf_counter()
    (xtr, ytr), (xte, yte) = load(a.archive)
    if a.limit_train:
        xtr, ytr = xtr[:a.limit_train], ytr[:a.limit_train]
    if a.limit_test:
        xte, yte = xte[:a.limit_test], yte[:a.limit_test]
    net = CifarNet().to(memory_format=mf)
    loader = TrainLoader(xtr, ytr, a.batch_size)
    total = math.ceil(a.epochs * len(loader))
    whiten_steps = math.ceil(WHITEN_BIAS_EPOCHS * len(loader))
    sgd, muon = make_optimizers(net, a.batch_size, torch.bfloat16 if a.ns_bf16 else torch.float32)
    net.init_whiten(normalize(xtr[:WHITEN_IMAGES]))
    step, t_train = 0, time.perf_counter()
    for epoch in range(math.ceil(total / len(loader))):
        net.train()
        for x, y in loader:
            x = x.contiguous(memory_format=mf)
            out = net(x, whiten_bias_grad=step < whiten_steps)
            F.cross_entropy(out, y, label_smoothing=LABEL_SMOOTHING, reduction="sum").backward()
            set_lrs(sgd, muon, step, total, whiten_steps)
            sgd.step()
            muon.step()
            net.zero_grad(set_to_none=True)
            step += 1
            if step >= total:
                break
        line = dict(epoch=epoch + 1, train_acc=(out.argmax(1) == y).float().mean().item(),
                    elapsed_s=round(time.perf_counter() - t0, 1))
        if a.epoch_eval:
            line["test_acc"] = evaluate(net, xte, yte, 0, mf)
        print(json.dumps(line), flush=True)
    t_eval = time.perf_counter()
    acc = evaluate(net, xte, yte, 0, mf)
    tta = evaluate(net, xte, yte, a.tta_level, mf)
    t1 = time.perf_counter()
    print(json.dumps(dict(model=MODEL, seed=a.seed, test_acc=acc, test_acc_tta=tta, steps=step,
                          train_s=round(t_eval - t_train, 1), eval_s=round(t1 - t_eval, 1),
                          total_s=round(t1 - t0, 1),
                          peak_rss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                          **torch_config(a.threads))), flush=True)


def torch_config(threads):
    """The process's setup fields (allocator, threads, ISA), as bench/reference_seed.py's rows carry them."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from reference_seed import torch_config as config
    return config(threads)


def bench(a):
    """Training-step throughput of the recipe (forward, summed loss, backward, SGD + Muon, the rates): JSON lines
    like bench/airbench94_torch.py's `train` rows."""
    layouts = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
    data = None
    if a.archive and os.path.isfile(a.archive):
        (xtr, ytr), _ = load(a.archive)
        data_src = "cifar10"
    elif a.require_data:
        raise SystemExit(f"--bench --require-data: no archive at {a.archive}")
    else:
        data_src = "random"
    for layout in [l for l in a.layouts.split(",") if l]:
        mf = layouts[layout]
        for bs in [int(b) for b in a.batch.split(",") if b]:
            torch.manual_seed(a.seed)
            net = CifarNet().to(memory_format=mf)
            if data_src == "cifar10":
                batches = list(TrainLoader(xtr, ytr, bs))[:a.warmup + a.steps]
            else:
                g = torch.Generator().manual_seed(a.seed)
                batches = [(torch.randn(bs, 3, 32, 32, generator=g), torch.randint(0, 10, (bs,), generator=g))
                           for _ in range(min(a.warmup + a.steps, 4))]
            sgd, muon = make_optimizers(net, bs, torch.bfloat16 if a.ns_bf16 else torch.float32)
            net.train()
            rates = []
            for i in range(a.warmup + a.steps):
                x, y = batches[i % len(batches)]
                x = x.contiguous(memory_format=mf)
                t = time.perf_counter()
                out = net(x)
                F.cross_entropy(out, y, label_smoothing=LABEL_SMOOTHING, reduction="sum").backward()
                set_lrs(sgd, muon, i, 1000, 75)
                sgd.step()
                muon.step()
                net.zero_grad(set_to_none=True)
                (out.argmax(1) == y).sum().item()
                if i >= a.warmup:
                    rates.append(bs / (time.perf_counter() - t))
            s = sorted(rates)
            print(json.dumps(dict(bench="train", model=MODEL, batch=bs, layout=layout, data=data_src,
                                  img_per_s=s[len(s) // 2], img_per_s_min=s[0], img_per_s_max=s[-1],
                                  warmup=a.warmup, steps=a.steps, **torch_config(a.threads))), flush=True)


def trace(a):
    """A short Muon trace for the Rust parity test: two filter banks (one wide, one tall as a matrix), fixed
    pseudo-random weights and three gradients, the weights after each step (Newton-Schulz in float64 here, so the
    fixture is the algorithm's, not bf16's)."""
    g = torch.Generator().manual_seed(1234)
    shapes = {"wide": (4, 3, 3, 3), "tall": (20, 2, 3, 3)}
    # Inputs rounded to float32 so both sides start from the very same numbers.
    rnd = lambda s, scale: (torch.randn(s, generator=g, dtype=torch.float64) * scale).float().double()
    init = {k: rnd(s, 0.3) for k, s in shapes.items()}
    grads = [{k: rnd(s, 1.0) for k, s in shapes.items()} for _ in range(3)]
    params = {k: nn.Parameter(v.clone()) for k, v in init.items()}
    opt = Muon(list(params.values()), lr=MUON_LR, momentum=MUON_MOMENTUM, nesterov=True, ns_dtype=torch.float64)
    lrs = [MUON_LR * (1 - i / 3) for i in range(3)]
    steps = []
    for i, gs in enumerate(grads):
        for k, p in params.items():
            p.grad = gs[k].clone()
        opt.param_groups[0]["lr"] = lrs[i]
        opt.step()
        steps.append({k: [float(f"{x:.9g}") for x in p.detach().flatten().tolist()] for k, p in params.items()})
    out = dict(source="bench/airbench94_muon_torch.py --trace", torch=torch.__version__, momentum=MUON_MOMENTUM,
               nesterov=True, ns_steps=NS_STEPS, lrs=lrs, shapes={k: list(s) for k, s in shapes.items()},
               init={k: v.flatten().tolist() for k, v in init.items()},
               grads=[{k: v.flatten().tolist() for k, v in gs.items()} for gs in grads], after=steps)
    tmp = a.trace + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f)
    os.replace(tmp, a.trace)
    print(f"# wrote {a.trace}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archive", default="../shared/data/cifar-10-binary.tar.gz")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--channels-last", action="store_true", help="train/evaluate in channels_last")
    ap.add_argument("--epochs", type=float, default=EPOCHS)
    ap.add_argument("--batch-size", type=int, default=BATCH)
    ap.add_argument("--tta-level", type=int, default=2, choices=(0, 1, 2))
    ap.add_argument("--ns-bf16", action="store_true", help="Newton-Schulz in bfloat16 as the GPU script")
    ap.add_argument("--limit-train", type=int, default=0)
    ap.add_argument("--limit-test", type=int, default=0)
    ap.add_argument("--epoch-eval", action="store_true", help="also evaluate (no TTA) after every epoch")
    ap.add_argument("--bench", action="store_true", help="training-step throughput, JSON lines")
    ap.add_argument("--require-data", action="store_true")
    ap.add_argument("--batch", default="2000", help="--bench: batch sizes, comma-separated")
    ap.add_argument("--steps", type=int, default=3, help="--bench: timed steps")
    ap.add_argument("--warmup", type=int, default=2, help="--bench: untimed steps first")
    ap.add_argument("--layouts", default="nchw,channels_last", help="--bench: layouts, comma-separated")
    ap.add_argument("--trace", metavar="PATH", help="write the Muon parity fixture (JSON) and exit")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.trace:
        trace(a)
    elif a.bench:
        bench(a)
    else:
        train(a)


if __name__ == "__main__":
    main()

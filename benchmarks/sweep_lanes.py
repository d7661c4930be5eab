"""Does running two sweep runs at a time pay on this machine? One training process with all of torch's threads
against two at once with half the threads each, side by side in one run: the same recipe as the sweep (`cpu-short`:
batch 8, bf16 autocast where the CPU has it), timed over the same optimizer steps. `make blog` runs the sweep in
two lanes (`omr-blog sweep --lanes 2`) because on 2 cores a tiny model barely uses its second thread.

    .venv/bin/python benchmarks/sweep_lanes.py [--backbones resnet50 mobilevit_small] [--steps 40]
"""
import argparse, json, subprocess, sys, time
import torch
from omr_blog.backbones import BACKBONES
from memorise import cycling_steps   # the sweep's recipe on a few strips, cycled (this folder)

def time_steps(backbone: str, steps: int, threads: int) -> float:
    "Seconds per optimizer step of the sweep's recipe, after 5 warm-up steps, with `threads` intra-op threads."
    torch.set_num_threads(threads)
    step = cycling_steps(backbone, 64, 'cpu-short')
    for s in range(5): step(s)
    t = time.perf_counter()
    for s in range(steps): step(s)
    return (time.perf_counter() - t) / steps

def in_processes(backbone: str, steps: int, threads: int, n: int) -> list[float]:
    "Seconds per step of each of `n` processes started together (each its own interpreter, as each sweep run's kernel)."
    cmd = [sys.executable, __file__, '--worker', backbone, str(steps), str(threads)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(n)]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs): sys.exit(f'{backbone}: a timing process failed (its error is above)')
    return [json.loads(o.strip().splitlines()[-1]) for o in outs]

def main():
    if sys.argv[1:2] == ['--worker']:
        print(json.dumps(time_steps(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))); return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--backbones', nargs='*', default=['resnet50', 'mobilevit_small'], choices=list(BACKBONES), metavar='BACKBONE')
    ap.add_argument('--steps', type=int, default=40, help='timed optimizer steps per process (after 5 warm-up steps)')
    a = ap.parse_args()
    cores = torch.get_num_threads()
    if cores < 2: sys.exit('one thread only: there is nothing to share')
    print(f'{cores} threads; one run with {cores} threads vs two at once with {cores // 2} each; {a.steps} steps, cpu-short recipe')
    for b in a.backbones:
        (alone,) = in_processes(b, a.steps, cores, 1)
        pair = in_processes(b, a.steps, cores // 2, 2)
        gain = sum(1 / s for s in pair) / (1 / alone)   # steps per second of the machine, two lanes over one
        print(f'{b:16s} alone {alone * 1000:5.0f} ms/step   two lanes {pair[0] * 1000:5.0f} and {pair[1] * 1000:5.0f} ms/step   '
              f'machine throughput {gain:.2f}x', flush=True)

if __name__ == '__main__': main()

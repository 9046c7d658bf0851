import os, sys, time
import numpy as np
import fastconv
import torch
T = int(os.environ.get("T", "2"))
CLK = time.thread_time if T == 1 else time.perf_counter
torch.set_num_threads(T); fastconv.set_num_threads(T)
SHAPES = [
    ("128x16@28 3x3", (128,16,28,28,16,3,1,1)),
    ("128x32@28 3x3", (128,32,28,28,32,3,1,1)),
    ("128x64@14 3x3", (128,64,14,14,64,3,1,1)),
    ("128x128@7 3x3", (128,128,7,7,128,3,1,1)),
    ("128x256@3 3x3", (128,256,3,3,256,3,1,1)),
    ("100x16@28->16", (100,16,28,28,16,3,1,1)),
    ("100x32@14->64", (100,32,14,14,64,3,1,1)),
    ("32x64@56->64", (32,64,56,56,64,3,1,1)),
    ("100x1@28 5x5->30", (100,1,28,28,30,5,1,0)),
    ("stem 7x7/2", (32,3,112,112,64,7,2,3)),
    ("1x1 64->256 @56", (32,64,56,56,256,1,1,0)),
]
sel = sys.argv[1:] 
def med(f, reps):
    ts=[]
    for _ in range(reps):
        t=CLK(); f(); ts.append(CLK()-t)
    return np.median(ts)
for name,(n,c,h,w,k,ks,s,p) in SHAPES:
    if sel and not any(q in name for q in sel): continue
    rng=np.random.default_rng(0)
    x=rng.standard_normal((n,c,h,w)).astype(np.float32); wt=(rng.standard_normal((k,c,ks,ks))*0.1).astype(np.float32); b=np.zeros(k,np.float32)
    y=fastconv.conv2d_forward(x,wt,b,s,p); dy=rng.standard_normal(y.shape).astype(np.float32)
    tx=torch.from_numpy(x).requires_grad_(); tw=torch.from_numpy(wt).requires_grad_(); tb=torch.from_numpy(b).requires_grad_(); tdy=torch.from_numpy(dy)
    def fc_f(): fastconv.conv2d_forward(x,wt,b,s,p)
    def fc_fb(): fastconv.conv2d_forward(x,wt,b,s,p); fastconv.conv2d_backward(dy,x,wt,s,p)
    def fc_dw(): fastconv.conv2d_backward(dy,x,wt,s,p,need_dx=False)
    def pt_f():
        with torch.no_grad(): torch.nn.functional.conv2d(tx,tw,tb,s,p)
    def pt_fb():
        tx.grad=tw.grad=tb.grad=None
        torch.nn.functional.conv2d(tx,tw,tb,s,p).backward(tdy)
    flops = 2*n*k*c*ks*ks*y.shape[2]*y.shape[3]
    for f in (fc_f,fc_fb,pt_f,pt_fb,fc_dw): f()
    reps = 7
    r = {}
    for _ in range(3):
        for nm,f in (("fc_f",fc_f),("pt_f",pt_f),("fc_fb",fc_fb),("pt_fb",pt_fb),("fc_dw",fc_dw)):
            r.setdefault(nm,[]).append(med(f,reps))
    m = {k_: np.median(v) for k_,v in r.items()}
    print(f"{name:18s} fwd {m['fc_f']*1e3:7.2f} / {m['pt_f']*1e3:7.2f} ms = {m['fc_f']/m['pt_f']:.2f}x ({flops/m['fc_f']/1e9:5.0f} GF/s)  "
          f"f+b {m['fc_fb']*1e3:7.2f} / {m['pt_fb']*1e3:7.2f} = {m['fc_fb']/m['pt_fb']:.2f}x ({3*flops/m['fc_fb']/1e9:5.0f} GF/s) dw {m['fc_dw']*1e3:6.2f}", flush=True)
print("load", open("/proc/loadavg").read().strip(), "isa", fastconv.get_isa())

"""What `configure_optimizers` returns: an optimizer, optionally with a learning-rate
scheduler, with PyTorch's names and defaults."""

from wit_world.exports import lightning_module as _lm


class Scheduler:
    """A learning-rate schedule (`torch.optim.lr_scheduler`): `Scheduler.step(step_size,
    gamma)`, `Scheduler.cosine(t_max, eta_min)` or `Scheduler.linear(start_factor,
    end_factor, total_iters)`, advancing every epoch (or every optimizer step with
    `interval="step"`), after an optional linear warm-up."""

    def __init__(self, schedule, interval="epoch", warmup_iters=0, warmup_start_factor=1 / 3):
        self.schedule = schedule
        self.interval = interval
        self.warmup_iters = warmup_iters
        self.warmup_start_factor = warmup_start_factor

    @classmethod
    def step(cls, step_size, gamma=0.1, **options):
        return cls(_lm.Schedule_Step(_lm.StepSchedule(step_size, gamma)), **options)

    @classmethod
    def cosine(cls, t_max, eta_min=0.0, **options):
        return cls(_lm.Schedule_Cosine(_lm.CosineSchedule(t_max, eta_min)), **options)

    @classmethod
    def linear(cls, start_factor=1 / 3, end_factor=1.0, total_iters=5, **options):
        schedule = _lm.LinearSchedule(start_factor, end_factor, total_iters)
        return cls(_lm.Schedule_Linear(schedule), **options)

    def to_wit(self):
        interval = _lm.Interval.STEP if self.interval == "step" else _lm.Interval.EPOCH
        return _lm.LrScheduler(
            self.schedule, interval, self.warmup_iters, self.warmup_start_factor
        )


class Optimization:
    """An optimizer and its scheduler, as Lightning's `configure_optimizers` may return."""

    def __init__(self, optimizer, scheduler=None):
        self.optimizer = optimizer
        self.scheduler = scheduler

    def to_wit(self):
        scheduler = self.scheduler.to_wit() if self.scheduler is not None else None
        return _lm.Optimization(self.optimizer.to_wit(), scheduler)


class _Optimizer:
    """An optimizer; `.with_scheduler(scheduler)` adds a learning-rate scheduler."""

    def with_scheduler(self, scheduler):
        return Optimization(self, scheduler)


class SGD(_Optimizer):
    """`torch.optim.SGD`."""

    def __init__(self, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        self.config = _lm.SgdConfig(lr, momentum, dampening, weight_decay, nesterov)

    def to_wit(self):
        return _lm.Optimizer_Sgd(self.config)


class Adam(_Optimizer):
    """`torch.optim.Adam`."""

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.config = _lm.AdamConfig(lr, betas[0], betas[1], eps, weight_decay)

    def to_wit(self):
        return _lm.Optimizer_Adam(self.config)


class AdamW(_Optimizer):
    """`torch.optim.AdamW` (weight decay 0.01 by default, as PyTorch)."""

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        self.config = _lm.AdamConfig(lr, betas[0], betas[1], eps, weight_decay)

    def to_wit(self):
        return _lm.Optimizer_Adamw(self.config)

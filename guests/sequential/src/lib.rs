//! `lightning_mcp.models.sequential.Sequential`: a model that is its config — a list of layers
//! (like `torch.nn.Sequential`), a loss and an optimizer. Every config is checked before any
//! parameter exists: the per-sample shape is walked through all layers first, and an error
//! names the layer, its type and the shape that does not fit.

use lightning_mcp_guest_sdk::prelude::*;
use lightning_mcp_guest_sdk::{DType, check, log};

/// Most layers.
const MAX_LAYERS: usize = 64;
/// Largest width, channel count or embedding size of any layer.
const MAX_WIDTH: u32 = 65_536;
/// Largest vocabulary of an embedding.
const MAX_VOCAB: u32 = 1 << 20;
/// Largest kernel side, stride, padding or dilation.
const MAX_WINDOW: u32 = 4096;
/// Most parameters and buffers, all layers together.
const MAX_PARAMETERS: u64 = 50_000_000;
/// Most values of one sample, at the input and after every layer.
const MAX_SAMPLE_VALUES: u64 = 1 << 24;
/// Most dims of one sample (the host's tensors have at most 6, with the batch dim).
const MAX_RANK: usize = 5;

/// A side length given as one integer (square) or as `[height, width]`; it serializes as
/// given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "kernel_size, stride, padding, dilation and output_size take an integer \
              >= 0 or [height, width]"
)]
enum Size2 {
    /// The same size in both dims.
    Square(u32),
    /// `[height, width]`.
    Pair([u32; 2]),
}

impl Size2 {
    /// `(height, width)`.
    fn hw(self) -> (u32, u32) {
        match self {
            Size2::Square(s) => (s, s),
            Size2::Pair([h, w]) => (h, w),
        }
    }

    /// Both sides are in `min..=max`.
    fn within(self, min: u32, max: u32) -> bool {
        let (h, w) = self.hw();
        (min..=max).contains(&h) && (min..=max).contains(&w)
    }

    /// `1`, the default stride and dilation.
    fn one() -> Self {
        Size2::Square(1)
    }

    /// `0`, the default padding.
    fn zero() -> Self {
        Size2::Square(0)
    }
}

impl std::fmt::Display for Size2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (h, w) = self.hw();
        write!(f, "{h}x{w}")
    }
}

/// A pooling window, as `torch.nn.MaxPool2d` / `AvgPool2d` take it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "PoolJson")]
struct Pool {
    /// Window size.
    kernel_size: Size2,
    /// Step of the window (default: the kernel size).
    stride: Size2,
    /// Cells added on each side, at most half the kernel.
    padding: Size2,
}

/// A [`Pool`] as requested, before its stride defaults to the kernel size.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolJson {
    /// Window size.
    kernel_size: Size2,
    /// Step of the window.
    #[serde(default)]
    stride: Option<Size2>,
    /// Cells added on each side.
    #[serde(default = "Size2::zero")]
    padding: Size2,
}

impl From<PoolJson> for Pool {
    fn from(json: PoolJson) -> Self {
        Self {
            kernel_size: json.kernel_size,
            stride: json.stride.unwrap_or(json.kernel_size),
            padding: json.padding,
        }
    }
}

impl Pool {
    /// The options of the host's pooling ops.
    fn options(&self) -> Pool2dOptions {
        Pool2dOptions {
            stride: self.stride.hw(),
            padding: self.padding.hw(),
            ..Pool2dOptions::new(self.kernel_size.hw())
        }
    }
}

/// A convolution, as `torch.nn.Conv2d` takes it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Conv {
    /// Output channels.
    out_channels: u32,
    /// Kernel size.
    kernel_size: Size2,
    /// Step of the kernel.
    #[serde(default = "Size2::one")]
    stride: Size2,
    /// Zeros added on each side.
    #[serde(default = "Size2::zero")]
    padding: Size2,
    /// Spacing of the kernel's cells.
    #[serde(default = "Size2::one")]
    dilation: Size2,
    /// Channel groups.
    #[serde(default = "one")]
    groups: u32,
    /// Whether it adds a bias.
    #[serde(default = "yes")]
    bias: bool,
}

/// One layer of the config, tagged by `type`, with PyTorch's argument names and defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum LayerSpec {
    /// `torch.nn.Linear` over the last dim.
    Linear {
        /// Output features.
        out: u32,
        /// Whether it adds a bias.
        #[serde(default = "yes")]
        bias: bool,
    },
    /// `torch.nn.Conv2d` of `[channels, height, width]`.
    Conv2d(Conv),
    /// `torch.nn.MaxPool2d`.
    MaxPool2d(Pool),
    /// `torch.nn.AvgPool2d` (padded cells count toward the mean).
    AvgPool2d(Pool),
    /// `torch.nn.AdaptiveAvgPool2d`.
    AdaptiveAvgPool2d {
        /// The output's `[height, width]`.
        output_size: Size2,
    },
    /// `torch.nn.Flatten`: everything but the batch dim into one.
    Flatten {},
    /// `torch.nn.Dropout`.
    Dropout {
        /// Probability of zeroing an element, in `[0, 1)`.
        #[serde(default = "half")]
        p: f32,
    },
    /// `torch.nn.BatchNorm1d` / `BatchNorm2d` over dim 0 of the sample.
    BatchNorm {
        /// Weight of each batch in the running statistics.
        #[serde(default = "tenth")]
        momentum: f32,
        /// Added to the variance.
        #[serde(default = "small")]
        eps: f32,
    },
    /// `torch.nn.LayerNorm` over the last dim.
    LayerNorm {
        /// Added to the variance.
        #[serde(default = "small")]
        eps: f32,
    },
    /// `max(x, 0)`.
    Relu {},
    /// GELU.
    Gelu {},
    /// `tanh(x)`.
    Tanh {},
    /// Logistic sigmoid.
    Sigmoid {},
    /// `torch.nn.Embedding` of integer token ids; only as the first layer.
    Embedding {
        /// Rows of the table (the vocabulary size).
        num_embeddings: u32,
        /// Size of each row.
        embedding_dim: u32,
    },
}

/// Serde default `true`.
fn yes() -> bool {
    true
}
/// Serde default `1`.
fn one() -> u32 {
    1
}
/// Serde default `0.5` (dropout).
fn half() -> f32 {
    0.5
}
/// Serde default `0.1` (batch norm's momentum).
fn tenth() -> f32 {
    0.1
}
/// Serde default `1e-5` (a norm's eps).
fn small() -> f32 {
    1e-5
}

/// The losses on offer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Loss {
    /// Cross-entropy of logits `[classes]` against class indices; logs accuracy too.
    #[default]
    CrossEntropy,
    /// Mean squared error against targets of the output's shape.
    Mse,
}

/// The optimizers on offer, with PyTorch's defaults besides `lr` and `weight_decay`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum OptimizerName {
    /// `torch.optim.Adam`.
    #[default]
    Adam,
    /// `torch.optim.AdamW`.
    Adamw,
    /// `torch.optim.SGD`.
    Sgd,
}

/// The model's config: the request's `model` object without `_target_`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Hyperparameters {
    /// The shape of one sample, without the batch dim.
    input_shape: Vec<u32>,
    /// The layers, in order.
    layers: Vec<LayerSpec>,
    /// The loss.
    loss: Loss,
    /// The optimizer.
    optimizer: OptimizerName,
    /// Learning rate, in (0, 10].
    lr: f32,
    /// Weight decay (L2 penalty; decoupled for AdamW), >= 0; absent: PyTorch's default (0,
    /// AdamW 0.01).
    weight_decay: Option<f32>,
    /// An optional learning-rate scheduler.
    lr_scheduler: Option<LrScheduler>,
}

impl Default for Hyperparameters {
    fn default() -> Self {
        Self {
            input_shape: vec![2],
            layers: vec![
                LayerSpec::Linear {
                    out: 32,
                    bias: true,
                },
                LayerSpec::Relu {},
                LayerSpec::Linear { out: 2, bias: true },
            ],
            loss: Loss::CrossEntropy,
            optimizer: OptimizerName::Adam,
            lr: 0.01,
            weight_decay: None,
            lr_scheduler: None,
        }
    }
}

/// A per-sample shape, without the batch dim.
type Shape = Vec<usize>;

/// Values in `shape`, saturating.
fn volume(shape: &[usize]) -> u64 {
    shape.iter().fold(1u64, |n, d| n.saturating_mul(*d as u64))
}

/// What one layer does to the per-sample shape.
struct Step {
    /// The output shape.
    output: Shape,
    /// Parameters and buffers the layer declares.
    parameters: u64,
}

impl Step {
    /// A layer without parameters.
    fn reshaped(output: Shape) -> Self {
        Self {
            output,
            parameters: 0,
        }
    }
}

impl LayerSpec {
    /// The `type` name.
    fn kind(&self) -> &'static str {
        match self {
            LayerSpec::Linear { .. } => "linear",
            LayerSpec::Conv2d(_) => "conv2d",
            LayerSpec::MaxPool2d(_) => "max_pool2d",
            LayerSpec::AvgPool2d(_) => "avg_pool2d",
            LayerSpec::AdaptiveAvgPool2d { .. } => "adaptive_avg_pool2d",
            LayerSpec::Flatten {} => "flatten",
            LayerSpec::Dropout { .. } => "dropout",
            LayerSpec::BatchNorm { .. } => "batch_norm",
            LayerSpec::LayerNorm { .. } => "layer_norm",
            LayerSpec::Relu {} => "relu",
            LayerSpec::Gelu {} => "gelu",
            LayerSpec::Tanh {} => "tanh",
            LayerSpec::Sigmoid {} => "sigmoid",
            LayerSpec::Embedding { .. } => "embedding",
        }
    }

    /// The output shape and parameter count for a per-sample `input`, or why it does not fit.
    /// `first` says whether this is the first layer. Errors are bare: the caller names the
    /// layer.
    fn step(&self, input: &[usize], first: bool) -> Result<Step, String> {
        match self {
            LayerSpec::Linear { out, bias } => linear(input, *out, *bias),
            LayerSpec::Conv2d(conv) => conv.step(input),
            LayerSpec::MaxPool2d(pool) | LayerSpec::AvgPool2d(pool) => pool_step(pool, input),
            LayerSpec::AdaptiveAvgPool2d { output_size } => adaptive_step(*output_size, input),
            LayerSpec::Flatten {} => Ok(Step::reshaped(vec![
                usize::try_from(volume(input)).unwrap_or(usize::MAX),
            ])),
            LayerSpec::Dropout { p } => check::fraction("p", *p)
                .map(|()| Step::reshaped(input.to_vec()))
                .map_err(|e| e.to_string()),
            LayerSpec::BatchNorm { momentum, eps } => batch_norm_step(input, *momentum, *eps),
            LayerSpec::LayerNorm { eps } => layer_norm_step(input, *eps),
            LayerSpec::Relu {}
            | LayerSpec::Gelu {}
            | LayerSpec::Tanh {}
            | LayerSpec::Sigmoid {} => Ok(Step::reshaped(input.to_vec())),
            LayerSpec::Embedding {
                num_embeddings,
                embedding_dim,
            } => embedding_step(input, *num_embeddings, *embedding_dim, first),
        }
    }
}

/// A field's value when it lies in `min..=max`, else an error naming it (the SDK's check, as
/// the message a layer's error wraps).
fn bounded(field: &str, value: u32, min: u32, max: u32) -> Result<u32, String> {
    check::within(field, value, min..=max).map_err(|e| e.to_string())
}

/// A window field's sides when they lie in `min..=max`, else an error naming it.
fn bounded_size(field: &str, value: Size2, min: u32, max: u32) -> Result<(u32, u32), String> {
    match value.within(min, max) {
        true => Ok(value.hw()),
        false => Err(format!(
            "{field} must be between {min} and {max} in each dim, got {value}"
        )),
    }
}

/// `eps` when it is a finite number > 0.
fn positive_eps(eps: f32) -> Result<(), String> {
    match eps.is_finite() && eps > 0.0 {
        true => Ok(()),
        false => Err(format!("eps must be a finite number > 0, got {eps}")),
    }
}

/// `[.., in] -> [.., out]`.
fn linear(input: &[usize], out: u32, bias: bool) -> Result<Step, String> {
    let out = bounded("out", out, 1, MAX_WIDTH)?;
    let features = input.last().copied().unwrap_or(0) as u64;
    let mut output = input.to_vec();
    if let Some(last) = output.last_mut() {
        *last = out as usize;
    }
    let bias = if bias { u64::from(out) } else { 0 };
    Ok(Step {
        output,
        parameters: features.saturating_mul(out.into()).saturating_add(bias),
    })
}

/// `[channels, height, width]` of an image input.
fn image(input: &[usize]) -> Result<(usize, usize, usize), String> {
    match input {
        [c, h, w] => Ok((*c, *h, *w)),
        _ => Err(format!(
            "expects an input [channels, height, width], got {input:?}"
        )),
    }
}

/// PyTorch's output side of a window: `floor((size + 2p - d(k - 1) - 1) / s) + 1`, or `None`
/// when it is less than 1.
fn output_side(
    size: usize,
    kernel: u32,
    stride: u32,
    padding: u32,
    dilation: u32,
) -> Option<usize> {
    let span = i64::from(dilation) * (i64::from(kernel) - 1) + 1;
    let room = size as i64 + 2 * i64::from(padding) - span;
    match room >= 0 && stride >= 1 {
        true => usize::try_from(room / i64::from(stride) + 1).ok(),
        false => None,
    }
}

/// The output `[height, width]` of a window over `[c, h, w]`, or an error that the window
/// (described by `what`) does not fit.
fn window(
    input: &[usize],
    (kh, kw): (u32, u32),
    (sh, sw): (u32, u32),
    (ph, pw): (u32, u32),
    (dh, dw): (u32, u32),
    what: &str,
) -> Result<(usize, usize), String> {
    let (_, h, w) = image(input)?;
    match (
        output_side(h, kh, sh, ph, dh),
        output_side(w, kw, sw, pw, dw),
    ) {
        (Some(oh), Some(ow)) => Ok((oh, ow)),
        _ => Err(format!("{what} does not fit the input {input:?}")),
    }
}

impl Conv {
    /// `[in, h, w] -> [out, h', w']`.
    fn step(&self, input: &[usize]) -> Result<Step, String> {
        let (channels, _, _) = image(input)?;
        let out = bounded("out_channels", self.out_channels, 1, MAX_WIDTH)?;
        let groups = bounded("groups", self.groups, 1, MAX_WIDTH)?;
        let kernel = bounded_size("kernel_size", self.kernel_size, 1, MAX_WINDOW)?;
        let stride = bounded_size("stride", self.stride, 1, MAX_WINDOW)?;
        let padding = bounded_size("padding", self.padding, 0, MAX_WINDOW)?;
        let dilation = bounded_size("dilation", self.dilation, 1, MAX_WINDOW)?;
        let g = groups as usize;
        if !channels.is_multiple_of(g) || !(out as usize).is_multiple_of(g) {
            return Err(format!(
                "{channels} input and {out} output channels (input {input:?}) do not divide \
                 into {groups} groups"
            ));
        }
        let what = match (dilation, padding) {
            ((1, 1), (0, 0)) => format!("kernel {}", self.kernel_size),
            _ => format!(
                "kernel {} (dilation {}, padding {})",
                self.kernel_size, self.dilation, self.padding
            ),
        };
        let (oh, ow) = window(input, kernel, stride, padding, dilation, &what)?;
        let weights = (out as u64)
            .saturating_mul((channels / g) as u64)
            .saturating_mul(u64::from(kernel.0) * u64::from(kernel.1));
        Ok(Step {
            output: vec![out as usize, oh, ow],
            parameters: weights.saturating_add(if self.bias { out.into() } else { 0 }),
        })
    }

    /// The SDK's config for `in_channels` input channels.
    fn config(&self, in_channels: u32) -> Conv2dConfig {
        let options = Conv2dOptions {
            stride: self.stride.hw(),
            padding: self.padding.hw(),
            dilation: self.dilation.hw(),
            groups: self.groups,
        };
        Conv2dConfig {
            bias: self.bias,
            ..Conv2dConfig::new(in_channels, self.out_channels, self.kernel_size.hw())
                .with_options(options)
        }
    }
}

/// `[c, h, w] -> [c, h', w']` for max and average pooling.
fn pool_step(pool: &Pool, input: &[usize]) -> Result<Step, String> {
    let (channels, _, _) = image(input)?;
    let kernel = bounded_size("kernel_size", pool.kernel_size, 1, MAX_WINDOW)?;
    let stride = bounded_size("stride", pool.stride, 1, MAX_WINDOW)?;
    let padding = bounded_size("padding", pool.padding, 0, MAX_WINDOW)?;
    if padding.0 > kernel.0 / 2 || padding.1 > kernel.1 / 2 {
        return Err(format!(
            "padding {} is more than half the kernel {}",
            pool.padding, pool.kernel_size
        ));
    }
    let what = match padding {
        (0, 0) => format!("kernel {}", pool.kernel_size),
        _ => format!("kernel {} with padding {}", pool.kernel_size, pool.padding),
    };
    let (oh, ow) = window(input, kernel, stride, padding, (1, 1), &what)?;
    Ok(Step::reshaped(vec![channels, oh, ow]))
}

/// `[c, h, w] -> [c, output_size]`.
fn adaptive_step(output_size: Size2, input: &[usize]) -> Result<Step, String> {
    let (channels, _, _) = image(input)?;
    let (h, w) = bounded_size("output_size", output_size, 1, MAX_WIDTH)?;
    Ok(Step::reshaped(vec![channels, h as usize, w as usize]))
}

/// Batch norm over dim 0 of `[c]`, `[c, l]` or `[c, h, w]`.
fn batch_norm_step(input: &[usize], momentum: f32, eps: f32) -> Result<Step, String> {
    let features = match input {
        [c] | [c, _] | [c, _, _] => *c,
        _ => {
            return Err(format!(
                "expects an input [features], [channels, length] or [channels, height, width], \
                 got {input:?}"
            ));
        }
    };
    if features > MAX_WIDTH as usize {
        return Err(format!(
            "normalises dim 0 of the input {input:?}, more than {MAX_WIDTH} features"
        ));
    }
    if !(0.0..=1.0).contains(&momentum) {
        return Err(format!("momentum must be in [0, 1], got {momentum}"));
    }
    positive_eps(eps)?;
    // Weight and bias, and the running mean and variance.
    Ok(Step {
        output: input.to_vec(),
        parameters: 4 * features as u64,
    })
}

/// LayerSpec norm over the last dim.
fn layer_norm_step(input: &[usize], eps: f32) -> Result<Step, String> {
    let features = input.last().copied().unwrap_or(0);
    if features > MAX_WIDTH as usize {
        return Err(format!(
            "normalises the last dim of the input {input:?}, more than {MAX_WIDTH} features"
        ));
    }
    positive_eps(eps)?;
    Ok(Step {
        output: input.to_vec(),
        parameters: 2 * features as u64,
    })
}

/// Token ids `[..] -> [.., embedding_dim]`.
fn embedding_step(
    input: &[usize],
    num_embeddings: u32,
    embedding_dim: u32,
    first: bool,
) -> Result<Step, String> {
    if !first {
        return Err(format!(
            "an embedding reads integer token ids from the model's input, so it must be the \
             first layer; here its input is {input:?}"
        ));
    }
    let rows = bounded("num_embeddings", num_embeddings, 1, MAX_VOCAB)?;
    let dim = bounded("embedding_dim", embedding_dim, 1, MAX_WIDTH)?;
    let mut output = input.to_vec();
    output.push(dim as usize);
    Ok(Step {
        output,
        parameters: u64::from(rows) * u64::from(dim),
    })
}

/// An error about `layers[index]`, naming its type.
fn layer_error(index: usize, layer: &LayerSpec, message: impl std::fmt::Display) -> Error {
    Error::new(format!("layers[{index}] ({}): {message}", layer.kind()))
}

/// The checked per-sample shapes: `inputs[i]` is what layer `i` receives.
struct Plan {
    /// The input shape of every layer.
    inputs: Vec<Shape>,
    /// The last layer's output shape.
    output: Shape,
}

impl Hyperparameters {
    /// Checks every field and walks the sample shape through all layers.
    fn validate(&self) -> Result<Plan> {
        check::learning_rate("lr", self.lr)?;
        if let Some(weight_decay) = self.weight_decay {
            check::non_negative("weight_decay", weight_decay)?;
        }
        let plan = self.walk(self.input()?)?;
        self.check_loss(&plan.output)?;
        Ok(plan)
    }

    /// The checked `input_shape`.
    fn input(&self) -> Result<Shape> {
        let shape: Shape = self.input_shape.iter().map(|d| *d as usize).collect();
        if shape.is_empty() || shape.len() > MAX_RANK || shape.contains(&0) {
            return Err(Error::new(format!(
                "input_shape must list 1 to {MAX_RANK} dims of at least 1 (one sample, without \
                 the batch dim, e.g. [4] or [1, 8, 8]), got {shape:?}"
            )));
        }
        if volume(&shape) > MAX_SAMPLE_VALUES {
            return Err(Error::new(format!(
                "input_shape {shape:?} has more than {MAX_SAMPLE_VALUES} values per sample"
            )));
        }
        Ok(shape)
    }

    /// The shapes every layer receives and gives, each checked.
    fn walk(&self, input: Shape) -> Result<Plan> {
        if self.layers.is_empty() || self.layers.len() > MAX_LAYERS {
            return Err(Error::new(format!(
                "layers must list 1 to {MAX_LAYERS} layers, got {}",
                self.layers.len()
            )));
        }
        let mut inputs = Vec::with_capacity(self.layers.len());
        let mut shape = input;
        let mut parameters = 0u64;
        for (i, layer) in self.layers.iter().enumerate() {
            let step = layer
                .step(&shape, i == 0)
                .map_err(|e| layer_error(i, layer, e))?;
            check_output(&step.output).map_err(|e| layer_error(i, layer, e))?;
            parameters = parameters.saturating_add(step.parameters);
            if parameters > MAX_PARAMETERS {
                return Err(layer_error(
                    i,
                    layer,
                    format!(
                        "the model would hold {parameters} parameters and buffers up to here, \
                         more than {MAX_PARAMETERS}"
                    ),
                ));
            }
            inputs.push(std::mem::replace(&mut shape, step.output));
        }
        Ok(Plan {
            inputs,
            output: shape,
        })
    }

    /// Cross-entropy needs logits `[classes]`; MSE takes any output.
    fn check_loss(&self, output: &[usize]) -> Result<()> {
        match (self.loss, output) {
            (Loss::Mse, _) => Ok(()),
            (Loss::CrossEntropy, [classes]) if *classes >= 2 => Ok(()),
            (Loss::CrossEntropy, _) => {
                let (index, layer) = self
                    .layers
                    .iter()
                    .enumerate()
                    .next_back()
                    .ok_or_else(|| Error::new("layers is empty"))?;
                Err(layer_error(
                    index,
                    layer,
                    format!(
                        "loss cross_entropy needs the last layer to output [classes] with at \
                         least 2 classes, got {output:?}; end with a linear layer (after a \
                         flatten for images), or use loss mse"
                    ),
                ))
            }
        }
    }
}

/// An output shape the host can hold.
fn check_output(output: &[usize]) -> Result<(), String> {
    if output.len() > MAX_RANK {
        return Err(format!(
            "its output {output:?} has more than {MAX_RANK} dims per sample"
        ));
    }
    if volume(output) > MAX_SAMPLE_VALUES {
        return Err(format!(
            "its output {output:?} has more than {MAX_SAMPLE_VALUES} values per sample"
        ));
    }
    Ok(())
}

/// A built layer.
enum Module {
    /// A linear layer.
    Linear(Linear),
    /// A convolution.
    Conv2d(Conv2d),
    /// Max pooling.
    MaxPool2d(Pool2dOptions),
    /// Average pooling.
    AvgPool2d(Pool2dOptions),
    /// Adaptive average pooling to `(height, width)`.
    AdaptiveAvgPool2d(u32, u32),
    /// Everything but the batch dim into one.
    Flatten,
    /// Dropout.
    Dropout(Dropout),
    /// Batch norm, with its running statistics.
    BatchNorm(BatchNorm),
    /// Layer norm.
    LayerNorm(LayerNorm),
    /// An elementwise activation.
    Activation(Activation),
    /// The table and its row count.
    Embedding(Embedding, u32),
}

/// A size that validation bounded to `u32`.
fn dim(size: usize) -> Result<u32> {
    u32::try_from(size).map_err(|_| Error::new(format!("dim {size} is too large")))
}

impl Module {
    /// Declares layer `name`'s parameters for the per-sample `input` (already checked).
    fn build(layer: &LayerSpec, input: &[usize], name: &str) -> Result<Self> {
        let first = dim(input.first().copied().unwrap_or(0))?;
        let last = dim(input.last().copied().unwrap_or(0))?;
        Ok(match layer {
            LayerSpec::Linear { out, bias } => {
                Module::Linear(LinearConfig::new(last, *out).with_bias(*bias).init(name)?)
            }
            LayerSpec::Conv2d(conv) => Module::Conv2d(conv.config(first).init(name)?),
            LayerSpec::MaxPool2d(pool) => Module::MaxPool2d(pool.options()),
            LayerSpec::AvgPool2d(pool) => Module::AvgPool2d(pool.options()),
            LayerSpec::AdaptiveAvgPool2d { output_size } => {
                let (h, w) = output_size.hw();
                Module::AdaptiveAvgPool2d(h, w)
            }
            LayerSpec::Flatten {} => Module::Flatten,
            LayerSpec::Dropout { p } => Module::Dropout(Dropout::new(*p)?),
            LayerSpec::BatchNorm { momentum, eps } => {
                let mut config = BatchNormConfig::new(first);
                (config.momentum, config.eps) = (*momentum, *eps);
                Module::BatchNorm(config.init(name)?)
            }
            LayerSpec::LayerNorm { eps } => {
                let mut config = LayerNormConfig::new(last);
                config.eps = *eps;
                Module::LayerNorm(config.init(name)?)
            }
            LayerSpec::Relu {} => Module::Activation(Activation::Relu),
            LayerSpec::Gelu {} => Module::Activation(Activation::Gelu),
            LayerSpec::Tanh {} => Module::Activation(Activation::Tanh),
            LayerSpec::Sigmoid {} => Module::Activation(Activation::Sigmoid),
            LayerSpec::Embedding {
                num_embeddings,
                embedding_dim,
            } => Module::Embedding(
                EmbeddingConfig::new(*num_embeddings, *embedding_dim).init(name)?,
                *num_embeddings,
            ),
        })
    }

    /// Applies the layer to a batch.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Module::Linear(linear) => linear.forward(x),
            Module::Conv2d(conv) => conv.forward(x),
            Module::MaxPool2d(options) => x.max_pool2d(*options),
            Module::AvgPool2d(options) => x.avg_pool2d(*options),
            Module::AdaptiveAvgPool2d(h, w) => x.adaptive_avg_pool2d(*h, *w),
            Module::Flatten => x.flatten(1, -1),
            Module::Dropout(dropout) => dropout.forward(x),
            Module::BatchNorm(norm) => norm.forward(x),
            Module::LayerNorm(norm) => norm.forward(x),
            Module::Activation(activation) => activation.forward(x),
            Module::Embedding(embedding, rows) => embedding.forward(&token_ids(x, *rows)?),
        }
    }
}

/// The inputs as i64 token ids, each checked to be an integer in `[0, rows)`.
fn token_ids(x: &Tensor, rows: u32) -> Result<Tensor> {
    let out_of_range = |id: String| {
        Error::new(format!(
            "token ids must be integers in [0, {rows}) (num_embeddings {rows}), got {id}"
        ))
    };
    let ids: Vec<i64> = match x.dtype() {
        DType::I64 => x.to_i64_vec()?,
        DType::F32 => x
            .to_f32_vec()?
            .into_iter()
            .map(|v| match v.fract() == 0.0 {
                true => Ok(v as i64),
                false => Err(out_of_range(v.to_string())),
            })
            .collect::<Result<_>>()?,
    };
    if let Some(bad) = ids.iter().find(|id| !(0..i64::from(rows)).contains(*id)) {
        return Err(out_of_range(bad.to_string()));
    }
    Tensor::from_i64(&ids, &x.shape())
}

/// The model: its config and the layers built from it.
struct Sequential {
    hparams: Hyperparameters,
    /// The layers built from `hparams.layers`, in order.
    modules: Vec<Module>,
}

impl LightningModule for Sequential {
    type Hyperparameters = Hyperparameters;
    const TARGET: &'static str = "lightning_mcp.models.sequential.Sequential";
    const SUMMARY: &'static str = "A model that is its config, like torch.nn.Sequential: \
        input_shape (one sample without the batch dim, e.g. [4] or [1, 8, 8]) and a list of \
        layers, each {\"type\": ...} with PyTorch's arguments and defaults: linear {out, bias}, \
        conv2d {out_channels, kernel_size, stride, padding, dilation, groups, bias}, \
        max_pool2d / avg_pool2d {kernel_size, stride, padding}, adaptive_avg_pool2d \
        {output_size} (sizes an integer or [h, w]), flatten, dropout {p}, batch_norm \
        {momentum, eps}, layer_norm {eps}, relu, gelu, tanh, sigmoid, and embedding \
        {num_embeddings, embedding_dim} as the first layer (integer token ids in). The shapes \
        are checked through all layers before any parameter is made. loss cross_entropy \
        (the last layer gives [classes]; logs *_loss and *_acc) or mse (logs *_loss); \
        optimizer adam, adamw or sgd with lr, weight_decay and an optional lr_scheduler. \
        Brings no data: give it in the request as nested arrays (data.train/val/test/predict), \
        a CSV file (data.csv), or a built-in dataset (data.dataset \"iris\": 4 features, 3 \
        classes; \"digits\": images [1, 8, 8] in [0, 1], 10 classes; data.input_shape reshapes \
        each sample, e.g. [64]).";

    fn new(h: &Hyperparameters) -> Result<Self> {
        let plan = h.validate()?;
        let modules = h
            .layers
            .iter()
            .zip(&plan.inputs)
            .enumerate()
            .map(|(i, (layer, input))| {
                Module::build(layer, input, &format!("layers.{i}"))
                    .map_err(|e| layer_error(i, layer, e))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            hparams: h.clone(),
            modules,
        })
    }

    /// `[batch, ..input_shape] -> [batch, ..output]`.
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        let mut layers = self.hparams.layers.iter().zip(&self.modules).enumerate();
        let (_, (layer, module)) = layers.next().ok_or_else(|| Error::new("no layers"))?;
        let mut h = module.forward(x).map_err(|e| layer_error(0, layer, e))?;
        for (i, (layer, module)) in layers {
            h = module.forward(&h).map_err(|e| layer_error(i, layer, e))?;
        }
        Ok(h)
    }

    /// The loss, logging `train_loss` (and `train_acc` for cross-entropy).
    fn training_step(
        &mut self,
        inputs: Tensor,
        targets: Tensor,
        _batch_index: u32,
    ) -> Result<Tensor> {
        self.evaluate(&inputs, &targets, "train")
    }

    /// Logs `val_loss` (and `val_acc` for cross-entropy).
    fn validation_step(
        &mut self,
        inputs: Tensor,
        targets: Tensor,
        _batch_index: u32,
    ) -> Result<()> {
        self.evaluate(&inputs, &targets, "val").map(drop)
    }

    /// Logs `test_loss` (and `test_acc` for cross-entropy).
    fn test_step(&mut self, inputs: Tensor, targets: Tensor, _batch_index: u32) -> Result<()> {
        self.evaluate(&inputs, &targets, "test").map(drop)
    }

    fn configure_optimizers(&self) -> Optimization {
        let h = &self.hparams;
        let optimizer = match h.optimizer {
            OptimizerName::Adam => Optimizer::adam(h.lr),
            OptimizerName::Adamw => Optimizer::adamw(h.lr),
            OptimizerName::Sgd => Optimizer::sgd(h.lr),
        };
        let optimizer = match h.weight_decay {
            Some(weight_decay) => optimizer.with_weight_decay(weight_decay),
            None => optimizer,
        };
        match h.lr_scheduler {
            Some(scheduler) => optimizer.with_scheduler(scheduler),
            None => optimizer.into(),
        }
    }
}

impl Sequential {
    /// The batch's per-sample shape must be `input_shape`.
    fn check_input(&self, x: &Tensor) -> Result<()> {
        let shape = x.shape();
        let expected: Shape = self
            .hparams
            .input_shape
            .iter()
            .map(|d| *d as usize)
            .collect();
        match shape.split_first() {
            Some((_, sample)) if sample == expected.as_slice() => Ok(()),
            _ => Err(Error::new(format!(
                "Sequential expects inputs [batch, {}] (input_shape {expected:?}), got {shape:?}; \
                 set input_shape, or data.input_shape to reshape each sample",
                expected
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The loss of a batch, logged as `{prefix}_loss` (with `{prefix}_acc` for
    /// cross-entropy).
    fn evaluate(&mut self, inputs: &Tensor, targets: &Tensor, prefix: &str) -> Result<Tensor> {
        let outputs = self.forward(inputs)?;
        match self.hparams.loss {
            Loss::CrossEntropy => log::classification(prefix, &outputs, targets),
            Loss::Mse => {
                let loss = outputs.mse(&regression_targets(targets, &outputs.shape())?)?;
                log::log_tensor(&format!("{prefix}_loss"), &loss)?;
                Ok(loss)
            }
        }
    }
}

/// MSE targets as f32 in the outputs' shape: integer targets become floats, and targets
/// `[batch]` fit outputs `[batch, 1]`.
fn regression_targets(targets: &Tensor, output: &[usize]) -> Result<Tensor> {
    let shape = targets.shape();
    let fits = shape == output || matches!((shape.as_slice(), output), ([n], [m, 1]) if n == m);
    if !fits {
        return Err(Error::new(format!(
            "loss mse: the targets {shape:?} do not match the outputs {output:?}"
        )));
    }
    match targets.dtype() {
        DType::F32 => targets.reshape(&output.iter().map(|d| *d as i64).collect::<Vec<_>>()),
        DType::I64 => Tensor::from_f32(&targets.to_f32_vec()?, output),
    }
}

export_model!(Sequential);

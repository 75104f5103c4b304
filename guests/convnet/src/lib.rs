//! `lightning_mcp.models.cnn.ConvNet`: a small configurable CNN for `[channels, height, width]`
//! images — blocks of 3×3 convolution, optional batch norm, ReLU and 2×2 max-pooling, then a
//! hidden linear layer and the classifier.

use lightning_mcp_guest_sdk::log;
use lightning_mcp_guest_sdk::prelude::*;

/// Most channels of any layer, and the largest hidden width.
const MAX_WIDTH: u32 = 4096;
/// Most convolution blocks.
const MAX_BLOCKS: usize = 8;
/// Largest image side.
const MAX_SIDE: u32 = 1024;

#[derive(Clone, Debug, Serialize, Deserialize, Hyperparameters)]
#[serde(default, deny_unknown_fields)]
struct Hyperparameters {
    /// Channels of the input images.
    #[hparam(default = 1, range = 1..=MAX_WIDTH)]
    in_channels: u32,
    /// `[height, width]` of the input images.
    #[hparam(default = [8, 8], range = 1..=MAX_SIDE)]
    image_size: [u32; 2],
    /// Classes to predict.
    #[hparam(default = 10, range = 2..=MAX_WIDTH)]
    num_classes: u32,
    /// Width of the hidden linear layer (0: none).
    #[hparam(default = 64, range = 0..=MAX_WIDTH)]
    hidden_dim: u32,
    /// Output channels of each block.
    #[hparam(default = vec![16, 32], range = 1..=MAX_WIDTH, max_len = MAX_BLOCKS)]
    channels: Vec<u32>,
    /// Batch norm after each convolution.
    #[hparam(default = true)]
    batch_norm: bool,
    /// Dropout before the classifier.
    #[hparam(check = check::fraction)]
    dropout: f32,
    /// Adam's learning rate.
    #[hparam(default = 0.01, check = check::learning_rate)]
    lr: f32,
    /// Adam's weight decay (L2 penalty).
    #[hparam(check = check::non_negative)]
    weight_decay: f32,
}

impl Hyperparameters {
    /// The image's side lengths after the last block's pooling, once there is a block and
    /// every block's 2x2 pooling has room.
    fn pooled_size(&self) -> Result<(u32, u32)> {
        if self.channels.is_empty() {
            return Err(Error::new(format!(
                "channels must list 1 to {MAX_BLOCKS} blocks, got 0"
            )));
        }
        let [mut h, mut w] = self.image_size;
        for i in 0..self.channels.len() {
            if h < 2 || w < 2 {
                return Err(Error::new(format!(
                    "channels[{i}]: the image is {h}x{w} before this block, too small for its \
                     2x2 pooling; use fewer blocks or larger images"
                )));
            }
            (h, w) = (h / 2, w / 2);
        }
        Ok((h, w))
    }
}

/// Convolution, optional batch norm; ReLU and pooling follow.
struct Block {
    conv: Conv2d,
    norm: Option<BatchNorm>,
}

struct ConvNet {
    hparams: Hyperparameters,
    blocks: Vec<Block>,
    hidden: Option<Linear>,
    classifier: Linear,
    dropout: Dropout,
}

impl LightningModule for ConvNet {
    type Hyperparameters = Hyperparameters;
    const TARGET: &'static str = "lightning_mcp.models.cnn.ConvNet";
    const SUMMARY: &'static str = "Small CNN classifier for [in_channels, height, width] images \
        (image_size): per entry of channels, a 3x3 convolution (padding 1), batch norm \
        (batch_norm), ReLU and 2x2 max-pooling; then a hidden linear layer of hidden_dim with \
        ReLU (0: none), dropout and the num_classes classifier. Cross-entropy, Adam(lr, \
        weight_decay). Brings no data: use data.dataset \"digits\" (8x8 handwritten digits) or \
        your own images.";

    fn new(h: &Hyperparameters) -> Result<Self> {
        h.validate()?;
        let (out_h, out_w) = h.pooled_size()?;
        let mut in_channels = h.in_channels;
        let mut blocks = Vec::with_capacity(h.channels.len());
        for (i, &out) in h.channels.iter().enumerate() {
            let options = Conv2dOptions {
                padding: (1, 1),
                ..Conv2dOptions::default()
            };
            let conv = Conv2dConfig::new(in_channels, out, (3, 3))
                .with_options(options)
                .init(&format!("blocks.{i}.conv"))?;
            let norm = match h.batch_norm {
                true => Some(BatchNormConfig::new(out).init(&format!("blocks.{i}.norm"))?),
                false => None,
            };
            blocks.push(Block { conv, norm });
            in_channels = out;
        }
        let features = in_channels * out_h * out_w;
        let hidden = match h.hidden_dim {
            0 => None,
            d => Some(LinearConfig::new(features, d).init("hidden")?),
        };
        let classifier_in = if h.hidden_dim == 0 {
            features
        } else {
            h.hidden_dim
        };
        Ok(Self {
            hparams: h.clone(),
            blocks,
            hidden,
            classifier: LinearConfig::new(classifier_in, h.num_classes).init("classifier")?,
            dropout: Dropout::new(h.dropout)?,
        })
    }

    /// `[batch, in_channels, height, width] -> [batch, num_classes]`.
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let [height, width] = self.hparams.image_size;
        let expected = [
            self.hparams.in_channels as usize,
            height as usize,
            width as usize,
        ];
        let shape = x.shape();
        if shape.len() != 4 || shape.get(1..) != Some(&expected[..]) {
            return Err(Error::new(format!(
                "ConvNet expects images [batch, {}, {}, {}], got {shape:?}; set in_channels and \
                 image_size, or data.input_shape",
                expected[0], expected[1], expected[2]
            )));
        }
        let mut blocks = self.blocks.iter();
        let first = blocks.next().ok_or_else(|| Error::new("no blocks"))?;
        let mut h = first.forward(x)?;
        for block in blocks {
            h = block.forward(&h)?;
        }
        let mut h = h.flatten(1, -1)?;
        if let Some(hidden) = &self.hidden {
            h = hidden.forward(&h)?.relu()?;
        }
        self.classifier.forward(&self.dropout.forward(&h)?)
    }

    /// Cross-entropy, logging `train_loss` and `train_acc`.
    fn training_step(
        &mut self,
        inputs: Tensor,
        targets: Tensor,
        _batch_index: u32,
    ) -> Result<Tensor> {
        log::classification("train", &self.forward(&inputs)?, &targets)
    }

    fn configure_optimizers(&self) -> Optimization {
        Optimizer::adam(self.hparams.lr)
            .with_weight_decay(self.hparams.weight_decay)
            .into()
    }
}

impl Block {
    /// Convolution, batch norm, ReLU, 2x2 max-pooling.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.conv.forward(x)?;
        if let Some(norm) = &self.norm {
            h = norm.forward(&h)?;
        }
        h.relu()?.max_pool2d(Pool2dOptions::new((2, 2)))
    }
}

export_model!(ConvNet);

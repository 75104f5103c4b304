//! `lightning_mcp.models.transformer.CharTransformer`: a tiny decoder-only (GPT-style,
//! pre-LayerNorm) character-level transformer that trains on the text it is given and
//! generates a continuation of a prompt, greedily.
//!
//! The vocabulary is the sorted distinct characters of `text`. The model brings its own data:
//! every window of `context` characters of the text, with the next character at each position
//! as the target; the last `val_fraction` of the text (when long enough) is held out for
//! validation and test. Prediction generates `generate` characters after `prompt` and returns
//! their Unicode code points.

use lightning_mcp_guest_sdk::log;
use lightning_mcp_guest_sdk::prelude::*;

/// The default training text: the opening of Charles Dickens's *A Tale of Two Cities*
/// (1859), in the public domain.
const DEFAULT_TEXT: &str = "It was the best of times, it was the worst of times, it was the \
    age of wisdom, it was the age of foolishness, it was the epoch of belief, it was the epoch \
    of incredulity, it was the season of Light, it was the season of Darkness, it was the \
    spring of hope, it was the winter of despair, we had everything before us, we had nothing \
    before us, we were all going direct to Heaven, we were all going direct the other way -- \
    in short, the period was so far like the present period, that some of its noisiest \
    authorities insisted on its being received, for good or for evil, in the superlative \
    degree of comparison only.";

/// Most characters of `text`.
const MAX_TEXT_CHARS: usize = 1_000_000;
/// Most distinct characters of `text` (the vocabulary size).
const MAX_VOCAB: usize = 4096;
/// Largest `context`.
const MAX_CONTEXT: u32 = 512;
/// Largest `d_model` and `ff_dim`.
const MAX_WIDTH: u32 = 16_384;
/// Most transformer layers.
const MAX_LAYERS: u32 = 16;
/// Most characters `generate` may ask for.
const MAX_GENERATE: u32 = 10_000;
/// Most characters of `prompt`.
const MAX_PROMPT_CHARS: usize = 10_000;
/// Largest `batch_size`.
const MAX_BATCH: u32 = 65_536;
/// Most window positions (windows × `context`) of one split: each split's inputs and targets
/// are i64 tensors of this many elements, 256 MiB each at most.
const MAX_WINDOW_TOKENS: usize = 1 << 25;
/// Characters of `text` the default prompt takes.
const DEFAULT_PROMPT_CHARS: usize = 16;

#[derive(Clone, Debug, Serialize, Deserialize, Hyperparameters)]
#[serde(default, deny_unknown_fields)]
struct Hyperparameters {
    /// The training text; its distinct characters are the vocabulary (checked by
    /// [`Corpus::new`]).
    #[hparam(default = DEFAULT_TEXT.to_string())]
    text: String,
    /// Block size: the most characters the model attends over.
    #[hparam(default = 32, range = 1..=MAX_CONTEXT)]
    context: u32,
    /// Width of the residual stream.
    #[hparam(default = 64, range = 1..=MAX_WIDTH)]
    d_model: u32,
    /// Attention heads; `d_model` must divide by it.
    #[hparam(default = 4, range = 1..=self.d_model)]
    num_heads: u32,
    /// Transformer layers.
    #[hparam(default = 2, range = 1..=MAX_LAYERS)]
    num_layers: u32,
    /// Width of each layer's feed-forward network (default `4 * d_model`).
    #[hparam(range = 1..=MAX_WIDTH)]
    ff_dim: Option<u32>,
    /// Dropout on the embeddings and each residual branch.
    #[hparam(check = check::fraction)]
    dropout: f32,
    /// Adam's learning rate.
    #[hparam(default = 3e-3, check = check::learning_rate)]
    lr: f32,
    /// Fraction of the text, at its end, held out for validation and test.
    #[hparam(default = 0.1, check = check::fraction)]
    val_fraction: f32,
    /// Batch size of the model's own data.
    #[hparam(default = 32, range = 1..=MAX_BATCH)]
    batch_size: u32,
    /// Where generation starts (default: the first characters of `text`, checked by
    /// [`Corpus::new`]).
    prompt: Option<String>,
    /// Characters to generate.
    #[hparam(default = 100, range = 1..=MAX_GENERATE)]
    generate: u32,
}

impl Hyperparameters {
    /// Whether the heads split `d_model` evenly.
    fn check_heads(&self) -> Result<()> {
        if self.d_model.is_multiple_of(self.num_heads) {
            return Ok(());
        }
        Err(Error::new(format!(
            "d_model ({}) must be divisible by num_heads ({})",
            self.d_model, self.num_heads
        )))
    }

    /// The feed-forward width.
    fn ff_dim(&self) -> u32 {
        self.ff_dim
            .unwrap_or_else(|| self.d_model.saturating_mul(4).min(MAX_WIDTH))
    }
}

/// The text as vocabulary indices, its split, and the prompt's indices.
struct Corpus {
    /// The sorted distinct characters of the text.
    vocab: Vec<char>,
    /// Every character of the text, as its vocabulary index.
    tokens: Vec<i64>,
    /// How many leading tokens are training data (the rest, if any, validation).
    train_len: usize,
    /// The prompt, as vocabulary indices.
    prompt: Vec<i64>,
}

impl Corpus {
    /// Encodes `h.text` and `h.prompt`, checking their sizes against `h.context`.
    fn new(h: &Hyperparameters) -> Result<Self> {
        let chars: Vec<char> = h.text.chars().collect();
        let context = h.context as usize;
        check_length(chars.len(), context)?;
        let vocab = vocabulary(&chars)?;
        let encode = |c: &char| vocab.binary_search(c).map(|i| i as i64);
        let tokens = chars
            .iter()
            .map(|c| encode(c).map_err(|_| Error::new("text: a character left the vocabulary")))
            .collect::<Result<Vec<_>>>()?;
        let prompt = match &h.prompt {
            Some(p) => prompt_tokens(p, &encode)?,
            None => tokens.iter().take(DEFAULT_PROMPT_CHARS).copied().collect(),
        };
        Ok(Self {
            train_len: train_len(tokens.len(), context, h.val_fraction),
            vocab,
            tokens,
            prompt,
        })
    }

    /// The training tokens.
    fn train(&self) -> &[i64] {
        self.tokens.get(..self.train_len).unwrap_or_default()
    }

    /// The held-out tokens; empty when the text is too short to hold any out.
    fn held_out(&self) -> &[i64] {
        self.tokens.get(self.train_len..).unwrap_or_default()
    }

    /// The character of vocabulary index `index`.
    fn char_of(&self, index: i64) -> Result<char> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.vocab.get(i).copied())
            .ok_or_else(|| {
                Error::new(format!(
                    "token {index} is outside the vocabulary of {} characters",
                    self.vocab.len()
                ))
            })
    }
}

/// The sorted distinct characters of the text: 2 to [`MAX_VOCAB`] of them.
fn vocabulary(chars: &[char]) -> Result<Vec<char>> {
    let mut vocab = chars.to_vec();
    vocab.sort_unstable();
    vocab.dedup();
    if (2..=MAX_VOCAB).contains(&vocab.len()) {
        Ok(vocab)
    } else {
        Err(Error::new(format!(
            "text must have between 2 and {MAX_VOCAB} distinct characters, got {}",
            vocab.len()
        )))
    }
}

/// Checks that a text of `len` characters holds at least one window of `context`, and not
/// more window positions than [`MAX_WINDOW_TOKENS`].
fn check_length(len: usize, context: usize) -> Result<()> {
    if len > MAX_TEXT_CHARS {
        return Err(Error::new(format!(
            "text must have at most {MAX_TEXT_CHARS} characters, got {len}"
        )));
    }
    if len <= context {
        return Err(Error::new(format!(
            "text has {len} characters: context {context} needs at least {} for one training \
             window; lower context or give a longer text",
            context + 1
        )));
    }
    let windows = len - context;
    if windows.saturating_mul(context) > MAX_WINDOW_TOKENS {
        return Err(Error::new(format!(
            "text of {len} characters with context {context} makes {windows} windows of \
             {context}, more than {MAX_WINDOW_TOKENS} positions; shorten text or lower context"
        )));
    }
    Ok(())
}

/// The prompt as vocabulary indices: non-empty, short enough, and every character in the
/// vocabulary.
fn prompt_tokens(
    prompt: &str,
    encode: &impl Fn(&char) -> std::result::Result<i64, usize>,
) -> Result<Vec<i64>> {
    let count = prompt.chars().count();
    if !(1..=MAX_PROMPT_CHARS).contains(&count) {
        return Err(Error::new(format!(
            "prompt must have between 1 and {MAX_PROMPT_CHARS} characters, got {count}"
        )));
    }
    prompt
        .chars()
        .map(|c| {
            encode(&c).map_err(|_| {
                Error::new(format!(
                    "prompt: the character {c:?} is not in the vocabulary (the characters of \
                     text)"
                ))
            })
        })
        .collect()
}

/// How many leading tokens of `total` are for training: all of them, unless the last
/// `val_fraction` and the rest both hold at least one window of `context`.
fn train_len(total: usize, context: usize, val_fraction: f32) -> usize {
    let held = (total as f64 * f64::from(val_fraction)).floor() as usize;
    if held > context && total - held > context {
        total - held
    } else {
        total
    }
}

/// Every window of `context` tokens of `tokens` (`[n, context]`, `n = len - context`) and the
/// tokens that follow each position (the same windows shifted by one), as i64 tensors. The
/// windows are assembled on the host from columns of the token sequence, so the guest never
/// holds `n × context` values.
fn windows(tokens: &[i64], context: usize) -> Result<(Tensor, Tensor)> {
    let n = tokens.len().saturating_sub(context);
    let column = Tensor::from_i64(tokens, &[tokens.len(), 1])?;
    let shifted = |offset: usize| -> Result<Tensor> {
        let columns = (offset..offset + context)
            .map(|start| column.slice(0, start as i64, (start + n) as i64))
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&columns.iter().collect::<Vec<_>>(), 1)
    };
    Ok((shifted(0)?, shifted(1)?))
}

/// Multi-head causal self-attention with concatenated heads.
struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    num_heads: usize,
}

impl Attention {
    /// Declares `{name}.query`, `.key`, `.value` and `.out`, each `d_model -> d_model`.
    fn new(name: &str, d_model: u32, num_heads: u32) -> Result<Self> {
        let linear =
            |part: &str| LinearConfig::new(d_model, d_model).init(&format!("{name}.{part}"));
        Ok(Self {
            query: linear("query")?,
            key: linear("key")?,
            value: linear("value")?,
            out: linear("out")?,
            num_heads: num_heads as usize,
        })
    }

    /// `[B, T, D] -> [B, T, D]`; `mask` is the `[T, T]` causal mask.
    fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let [b, t, d] = x.shape()[..] else {
            return Err(Error::new(format!(
                "attention expects [batch, time, d_model], got {:?}",
                x.shape()
            )));
        };
        let head_dim = d / self.num_heads;
        let split = |proj: &Linear| {
            proj.forward(x)?
                .reshape(&[b as i64, t as i64, self.num_heads as i64, head_dim as i64])?
                .transpose(1, 2)
        };
        let (q, k, v) = (split(&self.query)?, split(&self.key)?, split(&self.value)?);
        let scores = q
            .matmul(&k.transpose(-2, -1)?)?
            .mul_scalar(1.0 / (head_dim as f32).sqrt())?;
        let weights = scores.masked_fill(mask, f32::NEG_INFINITY)?.softmax(-1)?;
        let heads = weights
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape(&[b as i64, t as i64, d as i64])?;
        self.out.forward(&heads)
    }
}

/// One pre-LayerNorm transformer layer.
struct Block {
    ln1: LayerNorm,
    attn: Attention,
    ln2: LayerNorm,
    fc: Linear,
    proj: Linear,
    dropout: Dropout,
}

impl Block {
    /// Declares the layer's parameters under `blocks.{index}`.
    fn new(index: u32, h: &Hyperparameters) -> Result<Self> {
        let name = format!("blocks.{index}");
        let (d, ff) = (h.d_model, h.ff_dim());
        Ok(Self {
            ln1: LayerNormConfig::new(d).init(&format!("{name}.ln1"))?,
            attn: Attention::new(&format!("{name}.attn"), d, h.num_heads)?,
            ln2: LayerNormConfig::new(d).init(&format!("{name}.ln2"))?,
            fc: LinearConfig::new(d, ff).init(&format!("{name}.mlp.fc"))?,
            proj: LinearConfig::new(ff, d).init(&format!("{name}.mlp.proj"))?,
            dropout: Dropout::new(h.dropout)?,
        })
    }

    /// `x + attn(ln1(x))`, then `x + mlp(ln2(x))`.
    fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let attended = self.attn.forward(&self.ln1.forward(x)?, mask)?;
        let x = (x + &self.dropout.forward(&attended)?)?;
        let hidden = self.fc.forward(&self.ln2.forward(&x)?)?.gelu()?;
        let mlp = self.dropout.forward(&self.proj.forward(&hidden)?)?;
        &x + &mlp
    }
}

struct CharTransformer {
    hparams: Hyperparameters,
    corpus: Corpus,
    token_embedding: Embedding,
    position_embedding: Embedding,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    head: Linear,
    dropout: Dropout,
}

impl CharTransformer {
    /// Logits `[B*T, vocab]` of `inputs` and the targets flattened to `[B*T]`.
    fn flat_logits(&mut self, inputs: &Tensor, targets: &Tensor) -> Result<(Tensor, Tensor)> {
        let logits = self.forward(inputs)?;
        let vocab = self.corpus.vocab.len() as i64;
        Ok((logits.reshape(&[-1, vocab])?, targets.reshape(&[-1])?))
    }

    /// Logs `{stage}_loss` and `{stage}_acc` (per character) of a batch.
    fn evaluate(&mut self, stage: &str, inputs: &Tensor, targets: &Tensor) -> Result<()> {
        let (logits, targets) = self.flat_logits(inputs, targets)?;
        log::classification(stage, &logits, &targets).map(drop)
    }

    /// The vocabulary index the model predicts after `tokens` (greedy), attending over the
    /// last `context` of them.
    fn next_token(&mut self, tokens: &[i64]) -> Result<i64> {
        let window = tokens
            .get(tokens.len().saturating_sub(self.hparams.context as usize)..)
            .unwrap_or_default();
        let inputs = Tensor::from_i64(window, &[1, window.len()])?;
        let predicted = self.forward(&inputs)?.argmax(-1, false)?.to_i64_vec()?;
        predicted
            .last()
            .copied()
            .ok_or_else(|| Error::new("predict: the model predicted nothing"))
    }

    /// The code points of `generate` characters generated after `prompt`.
    fn continuation(&mut self, prompt: &[i64]) -> Result<Vec<i64>> {
        let mut tokens = prompt.to_vec();
        let mut generated = Vec::with_capacity(self.hparams.generate as usize);
        for _ in 0..self.hparams.generate {
            let next = self.next_token(&tokens)?;
            generated.push(i64::from(u32::from(self.corpus.char_of(next)?)));
            tokens.push(next);
        }
        Ok(generated)
    }
}

impl LightningModule for CharTransformer {
    type Hyperparameters = Hyperparameters;
    const TARGET: &'static str = "lightning_mcp.models.transformer.CharTransformer";
    const SUMMARY: &'static str = "Tiny decoder-only (GPT-style, pre-LayerNorm) character-level \
        transformer: token and learned position embeddings of d_model, num_layers layers of \
        causal multi-head self-attention (num_heads) and a GELU feed-forward network (ff_dim, \
        default 4 * d_model) with dropout, a final layer norm and a linear head over the \
        vocabulary (the sorted distinct characters of text). Cross-entropy per character, \
        Adam(lr). Brings its own data from text (default: the opening of A Tale of Two \
        Cities): every window of context characters, the next character at each position as \
        the target, the last val_fraction of the text held out for validation and test when \
        long enough (batch_size; data.shuffle: true shuffles the windows). Predict generates greedily (deterministic) `generate` \
        characters after prompt (default: the first 16 characters of text) and returns their \
        Unicode code points, [1, generate].";

    fn new(h: &Hyperparameters) -> Result<Self> {
        h.validate()?;
        h.check_heads()?;
        let corpus = Corpus::new(h)?;
        let vocab = corpus.vocab.len() as u32;
        let blocks = (0..h.num_layers)
            .map(|i| Block::new(i, h))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            token_embedding: EmbeddingConfig::new(vocab, h.d_model).init("token_embedding")?,
            position_embedding: EmbeddingConfig::new(h.context, h.d_model)
                .init("position_embedding")?,
            blocks,
            ln_f: LayerNormConfig::new(h.d_model).init("ln_f")?,
            head: LinearConfig::new(h.d_model, vocab).init("head")?,
            dropout: Dropout::new(h.dropout)?,
            hparams: h.clone(),
            corpus,
        })
    }

    /// i64 vocabulary indices `[B, T]` (`T <= context`) -> logits `[B, T, vocab]`.
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let t = match x.shape()[..] {
            [_, t] if (1..=self.hparams.context as usize).contains(&t) => t,
            _ => {
                return Err(Error::new(format!(
                    "forward expects vocabulary indices [batch, time] with time at most \
                     context ({}), got {:?}",
                    self.hparams.context,
                    x.shape()
                )));
            }
        };
        let positions = self.position_embedding.weight.slice(0, 0, t as i64)?;
        let embedded = (&self.token_embedding.forward(x)? + &positions)?;
        let mut h = self.dropout.forward(&embedded)?;
        let mask = Tensor::causal_mask(t as u32)?;
        for block in &self.blocks {
            h = block.forward(&h, &mask)?;
        }
        self.head.forward(&self.ln_f.forward(&h)?)
    }

    /// Cross-entropy over every position, logging `train_loss` and `train_acc` (per
    /// character).
    fn training_step(
        &mut self,
        inputs: Tensor,
        targets: Tensor,
        _batch_index: u32,
    ) -> Result<Tensor> {
        let (logits, targets) = self.flat_logits(&inputs, &targets)?;
        log::classification("train", &logits, &targets)
    }

    /// Logs `val_loss` and `val_acc` (per character).
    fn validation_step(
        &mut self,
        inputs: Tensor,
        targets: Tensor,
        _batch_index: u32,
    ) -> Result<()> {
        self.evaluate("val", &inputs, &targets)
    }

    /// Logs `test_loss` and `test_acc` (per character).
    fn test_step(&mut self, inputs: Tensor, targets: Tensor, _batch_index: u32) -> Result<()> {
        self.evaluate("test", &inputs, &targets)
    }

    /// For each row of vocabulary indices `[B, P]`, the code points of the `generate`
    /// characters that follow it: `[B, generate]`.
    fn predict_step(&mut self, inputs: Tensor, _batch_index: u32) -> Result<Tensor> {
        let shape = inputs.shape();
        let [rows, width] = shape[..] else {
            return Err(Error::new(format!(
                "predict expects prompts of vocabulary indices [batch, length], got {shape:?}"
            )));
        };
        let prompts = inputs.to_i64_vec()?;
        let mut out = Vec::with_capacity(rows.saturating_mul(self.hparams.generate as usize));
        for prompt in prompts.chunks(width.max(1)) {
            out.extend(self.continuation(prompt)?);
        }
        Tensor::from_i64(&out, &[rows, self.hparams.generate as usize])
    }

    fn configure_optimizers(&self) -> Optimization {
        Optimizer::adam(self.hparams.lr).into()
    }

    fn dataset(&mut self, split: Split, _seed: u64) -> Result<Option<Dataset>> {
        let batch_size = self.hparams.batch_size;
        let context = self.hparams.context as usize;
        let tokens = match split {
            Split::Train => self.corpus.train(),
            Split::Validation | Split::Test => self.corpus.held_out(),
            Split::Predict => {
                let prompt = &self.corpus.prompt;
                return Ok(Some(Dataset {
                    inputs: Tensor::from_i64(prompt, &[1, prompt.len()])?,
                    targets: None,
                    batch_size,
                }));
            }
        };
        if tokens.len() <= context {
            return Ok(None);
        }
        let (inputs, targets) = windows(tokens, context)?;
        Ok(Some(Dataset {
            inputs,
            targets: Some(targets),
            batch_size,
        }))
    }
}

export_model!(CharTransformer);

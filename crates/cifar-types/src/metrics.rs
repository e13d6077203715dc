use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// What one training epoch reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss per image over the epoch (the loss the optimizer minimised, label smoothing included,
    /// on augmented images).
    pub train_loss: f64,
    /// Fraction of the epoch's training images classified correctly during training, in [0, 1].
    pub train_acc: f64,
    /// Validation loss; NaN (`null` in JSON) for a run without a validation split.
    #[serde(with = "nan_as_null", default = "nan")]
    pub val_loss: f64,
    /// Validation accuracy; NaN (`null` in JSON) for a run without a validation split.
    #[serde(with = "nan_as_null", default = "nan")]
    pub val_acc: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Wall time of the epoch (training and validation), seconds.
    pub epoch_secs: f64,
    /// Training images per second during the epoch (validation excluded).
    pub train_images_per_sec: f64,
}

fn nan() -> f64 {
    f64::NAN
}

/// NaN is written as `null` and read back as NaN (JSON has no NaN).
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

/// Every epoch of a run, in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct History {
    /// One entry per completed epoch, oldest first.
    pub epochs: Vec<EpochMetrics>,
}

impl History {
    /// The epoch with the highest validation accuracy (the first one on ties), as the best-model rule picks it.
    /// None when the run has no validation split.
    pub fn best(&self) -> Option<&EpochMetrics> {
        self.epochs.iter().filter(|e| e.val_acc.is_finite()).fold(
            None,
            |best: Option<&EpochMetrics>, e| match best {
                Some(b) if b.val_acc >= e.val_acc => Some(b),
                _ => Some(e),
            },
        )
    }

    /// The most recent epoch, None when no epoch has completed.
    pub fn last(&self) -> Option<&EpochMetrics> {
        self.epochs.last()
    }

    /// Total wall time of all epochs, seconds.
    pub fn total_secs(&self) -> f64 {
        self.epochs.iter().map(|e| e.epoch_secs).sum()
    }
}

/// A confusion matrix: `counts[true][pred]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// An all-zero `classes` x `classes` matrix.
    pub fn new(classes: usize) -> Self {
        Self {
            counts: vec![vec![0; classes]; classes],
        }
    }

    /// Builds a matrix from its rows, checking it is square.
    pub fn from_rows(counts: Vec<Vec<u64>>) -> Result<Self> {
        let n = counts.len();
        if counts.iter().any(|r| r.len() != n) {
            return Err(Error::Invalid(format!(
                "confusion matrix: expected {n}x{n} counts"
            )));
        }
        Ok(Self { counts })
    }

    /// Number of classes (rows, and columns).
    pub fn classes(&self) -> usize {
        self.counts.len()
    }

    /// Counts one prediction (panics if a class is out of range).
    pub fn add(&mut self, truth: usize, pred: usize) {
        self.counts[truth][pred] += 1;
    }

    /// The counts, one row per true class, one column per predicted class.
    pub fn rows(&self) -> &[Vec<u64>] {
        &self.counts
    }

    /// How many images of class `truth` were predicted as `pred` (panics if a class is out of range).
    pub fn get(&self, truth: usize, pred: usize) -> u64 {
        self.counts[truth][pred]
    }

    /// Number of predictions counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Number of correct predictions (the diagonal).
    pub fn correct(&self) -> u64 {
        (0..self.classes()).map(|i| self.counts[i][i]).sum()
    }

    /// `correct / total`, in [0, 1]; 0 for an empty matrix.
    pub fn accuracy(&self) -> f64 {
        ratio(self.correct(), self.total())
    }

    /// Per-class precision, recall, F1 and support.
    pub fn class_reports(&self, class_names: &[String]) -> Vec<ClassReport> {
        let n = self.classes();
        (0..n)
            .map(|c| {
                let tp = self.counts[c][c];
                let support: u64 = self.counts[c].iter().sum();
                let predicted: u64 = (0..n).map(|t| self.counts[t][c]).sum();
                let precision = ratio(tp, predicted);
                let recall = ratio(tp, support);
                let f1 = if precision + recall > 0.0 {
                    2.0 * precision * recall / (precision + recall)
                } else {
                    0.0
                };
                ClassReport {
                    class: class_names
                        .get(c)
                        .cloned()
                        .unwrap_or_else(|| format!("class {c}")),
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect()
    }

    /// Rows scaled to sum to 1 (a row with no samples stays all zero).
    pub fn row_normalized(&self) -> Vec<Vec<f64>> {
        self.counts
            .iter()
            .map(|r| {
                let s: u64 = r.iter().sum();
                r.iter().map(|&v| ratio(v, s)).collect()
            })
            .collect()
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassReport {
    /// The class name (`class {c}` when no name was given for index `c`).
    pub class: String,
    /// Correct predictions of the class over all predictions of it, in [0, 1]; 0 when it was never predicted.
    pub precision: f64,
    /// Correct predictions of the class over its images, in [0, 1]; 0 when it has no images.
    pub recall: f64,
    /// Harmonic mean of precision and recall; 0 when both are 0.
    pub f1: f64,
    /// Number of images whose true class this is.
    pub support: u64,
}

/// The test-set evaluation written to `test_report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestReport {
    /// Fraction of test images classified correctly, in [0, 1] (with the TTA named by `tta`).
    pub accuracy: f64,
    /// Mean cross-entropy per test image (no label smoothing).
    pub loss: f64,
    /// The test-time augmentation these figures used (`none`, `mirror`, `mirror+shift`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tta: Option<String>,
    /// Accuracy of the same model without test-time augmentation, when `tta` is not `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_without_tta: Option<f64>,
    /// Fraction of test images whose true class is among the 5 most probable (with the TTA named by `tta`),
    /// reported when there are more than [`TestReport::TOP5_ABOVE`] classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top5_accuracy: Option<f64>,
    /// One report per class, in label order.
    pub per_class: Vec<ClassReport>,
    /// Rows are the true class, columns the predicted one.
    pub confusion_matrix: Vec<Vec<u64>>,
}

impl TestReport {
    /// Top-5 accuracy is reported for data sets of more classes than this.
    pub const TOP5_ABOVE: usize = 10;

    /// Builds the report from predictions and the mean loss (top-5 accuracy included when there are more than
    /// [`TestReport::TOP5_ABOVE`] classes).
    pub fn from_predictions(preds: &Predictions, loss: f64, class_names: &[String]) -> Self {
        let cm = preds.confusion_matrix();
        Self {
            accuracy: cm.accuracy(),
            loss,
            tta: None,
            accuracy_without_tta: None,
            top5_accuracy: (preds.classes > Self::TOP5_ABOVE).then(|| preds.top_k_accuracy(5)),
            per_class: cm.class_reports(class_names),
            confusion_matrix: cm.rows().to_vec(),
        }
    }
}

/// Class probabilities of every image of a set, with the true labels: `probs` is `[N, classes]` row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Predictions {
    /// Number of classes (the length of each row of `probs`).
    pub classes: usize,
    /// The true label of each image.
    pub labels: Vec<u8>,
    /// Probabilities, `labels.len() * classes` values, one row per image.
    pub probs: Vec<f32>,
}

impl Predictions {
    /// Builds the predictions, checking that `classes > 0`, that `probs` holds one row per label and that every
    /// label is below `classes` (else [`Error::Invalid`]).
    pub fn new(classes: usize, labels: Vec<u8>, probs: Vec<f32>) -> Result<Self> {
        if classes == 0 || probs.len() != labels.len() * classes {
            return Err(Error::Invalid(format!(
                "predictions: {} probabilities for {} labels of {classes} classes",
                probs.len(),
                labels.len()
            )));
        }
        if labels.iter().any(|&l| usize::from(l) >= classes) {
            return Err(Error::Invalid(format!(
                "predictions: a label is not below {classes}"
            )));
        }
        Ok(Self {
            classes,
            labels,
            probs,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The probabilities of image `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.probs[i * self.classes..(i + 1) * self.classes]
    }

    /// Predicted class (arg-max, first on ties) and its probability, for image `i`.
    pub fn predicted(&self, i: usize) -> (usize, f32) {
        self.row(i)
            .iter()
            .copied()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (c, p)| if p > b.1 { (c, p) } else { b },
            )
    }

    /// Fraction of images whose true class is among the `k` most probable (ties broken towards the lower class
    /// index, as [`predicted`](Self::predicted) does); `k ≥ classes` gives 1. 0 for an empty set.
    pub fn top_k_accuracy(&self, k: usize) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        let hits = (0..self.len())
            .filter(|&i| {
                let row = self.row(i);
                let label = usize::from(self.labels[i]);
                let p = row[label];
                // Classes ranked above the true one: more probable, or as probable with a lower index.
                let above = row
                    .iter()
                    .enumerate()
                    .filter(|&(c, &q)| q > p || (q == p && c < label))
                    .count();
                above < k
            })
            .count();
        hits as f64 / self.len() as f64
    }

    /// The confusion matrix of the true labels against the [`predicted`](Self::predicted) classes.
    pub fn confusion_matrix(&self) -> ConfusionMatrix {
        let mut cm = ConfusionMatrix::new(self.classes);
        for i in 0..self.len() {
            cm.add(usize::from(self.labels[i]), self.predicted(i).0);
        }
        cm
    }

    /// Indices of misclassified images, most confident mistakes first.
    pub fn misclassified(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.len())
            .filter(|&i| self.predicted(i).0 != usize::from(self.labels[i]))
            .collect();
        idx.sort_by(|&a, &b| self.predicted(b).1.total_cmp(&self.predicted(a).1));
        idx
    }

    /// Indices of correctly classified images, least confident first.
    pub fn correct_least_confident(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.len())
            .filter(|&i| self.predicted(i).0 == usize::from(self.labels[i]))
            .collect();
        idx.sort_by(|&a, &b| self.predicted(a).1.total_cmp(&self.predicted(b).1));
        idx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn top_k_counts_the_true_class_among_the_k_most_probable() {
        // 3 images of 4 classes: true class ranked 1st, 3rd, and tied for 2nd/3rd (lower index wins).
        let probs = vec![
            0.7, 0.1, 0.1, 0.1, //
            0.4, 0.3, 0.2, 0.1, //
            0.5, 0.2, 0.2, 0.1,
        ];
        let p = Predictions::new(4, vec![0, 2, 2], probs).unwrap();
        assert_eq!(p.top_k_accuracy(1), 1.0 / 3.0);
        assert_eq!(p.top_k_accuracy(2), 1.0 / 3.0);
        assert_eq!(p.top_k_accuracy(3), 1.0);
        assert_eq!(p.top_k_accuracy(9), 1.0);
        let r = TestReport::from_predictions(&p, 0.5, &names(4));
        assert_eq!(r.top5_accuracy, None);
        let many = Predictions::new(11, vec![10], (0..11).map(|c| c as f32).collect()).unwrap();
        let r = TestReport::from_predictions(&many, 0.5, &names(11));
        assert_eq!(r.top5_accuracy, Some(1.0));
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"top5_accuracy\":1.0"), "{json}");
    }

    #[test]
    fn precision_recall_by_hand() {
        // truth: 0,0,1,1 ; pred: 0,1,1,1
        let p = Predictions::new(
            2,
            vec![0, 0, 1, 1],
            vec![0.9, 0.1, 0.4, 0.6, 0.2, 0.8, 0.3, 0.7],
        )
        .unwrap();
        let r = TestReport::from_predictions(&p, 0.5, &names(2));
        assert_eq!(r.confusion_matrix, vec![vec![1, 1], vec![0, 2]]);
        assert_eq!(r.accuracy, 0.75);
        assert_eq!(r.per_class[0].precision, 1.0);
        assert_eq!(r.per_class[0].recall, 0.5);
        assert!((r.per_class[1].precision - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(r.per_class[1].recall, 1.0);
        assert!((r.per_class[1].f1 - 0.8).abs() < 1e-12);
        assert_eq!(r.per_class[1].support, 2);
        assert_eq!(p.misclassified(), vec![1]);
        assert_eq!(p.correct_least_confident(), vec![3, 2, 0]);
    }

    #[test]
    fn best_epoch_first_on_ties() {
        let e = |epoch, val_acc| EpochMetrics {
            epoch,
            train_loss: 1.0,
            train_acc: 0.5,
            val_loss: 1.0,
            val_acc,
            lr: 1e-3,
            epoch_secs: 2.0,
            train_images_per_sec: 10.0,
        };
        let h = History {
            epochs: vec![e(1, 0.3), e(2, 0.6), e(3, 0.6), e(4, 0.5)],
        };
        assert_eq!(h.best().unwrap().epoch, 2);
        assert_eq!(h.total_secs(), 8.0);
        assert!(History::default().best().is_none());
    }

    #[test]
    fn rejects_inconsistent_predictions() {
        assert!(Predictions::new(2, vec![0], vec![0.5]).is_err());
        assert!(Predictions::new(2, vec![2], vec![0.5, 0.5]).is_err());
        assert!(ConfusionMatrix::from_rows(vec![vec![1, 2], vec![3]]).is_err());
    }
}

//! Spatially weighted soft k-means (CPA's prototype step): teacher embeddings are
//! clustered into prototypes in a few soft iterations, each voxel's soft assignment
//! `softmax_p(ê_n · μ̂_p / τ)` multiplied by a Gaussian of its distance to the
//! prototype's position, so a prototype gathers voxels that are alike *and* near.
//!
//! `W = S ⊙ G`, `μ_p = Σ_n W_np e_n / Σ_n W_np` (then L2-normalised),
//! `c_p = Σ_n W_np x_n / Σ_n W_np`, with `G_np = exp(−‖x_n − c_p‖² / 2σ²)`,
//! `σ = FWHM / 2.355` and the z distance scaled (slices are thicker).

use burn::tensor::{Tensor, activation::softmax};

/// Options (reference: 3 iterations, τ = 0.033, FWHM 128 voxels, z × 2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SoftKMeans {
    pub iterations: usize,
    pub temperature: f64,
    pub fwhm: f64,
    pub z_scale: f64,
}

impl Default for SoftKMeans {
    fn default() -> Self {
        SoftKMeans {
            iterations: 3,
            temperature: 0.033,
            fwhm: 128.0,
            z_scale: 2.0,
        }
    }
}

/// L2-normalise the rows of `[N, C]`.
pub fn normalize_rows(x: Tensor<2>) -> Tensor<2> {
    x.clone() / x.powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12)
}

/// Squared distances `[N, P]` between rows of `a` `[N, 3]` and `b` `[P, 3]`.
pub fn squared_distances(a: Tensor<2>, b: Tensor<2>) -> Tensor<2> {
    let aa = a.clone().powf_scalar(2.0).sum_dim(1); // [N, 1]
    let bb = b.clone().powf_scalar(2.0).sum_dim(1).transpose(); // [1, P]
    (aa + bb - a.matmul(b.transpose()).mul_scalar(2.0)).clamp_min(0.0)
}

impl SoftKMeans {
    fn scale_z(&self, coords: Tensor<2>) -> Tensor<2> {
        let [n, _] = coords.dims();
        let xy = coords.clone().narrow(1, 0, 2);
        let z = coords.narrow(1, 2, 1).mul_scalar(self.z_scale);
        debug_assert_eq!(xy.dims()[0], n);
        Tensor::cat(vec![xy, z], 1)
    }

    /// Cluster `features` `[N, C]` at `coords` `[N, 3]` starting from `prototypes`
    /// `[P, C]` at `prototype_coords` `[P, 3]`; returns the normalised prototypes and
    /// their positions. Runs without gradients (the teacher side).
    pub fn cluster(
        &self,
        features: Tensor<2>,
        coords: Tensor<2>,
        prototypes: Tensor<2>,
        prototype_coords: Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        let features = features.detach();
        let normed = normalize_rows(features.clone());
        let coords = self.scale_z(coords.detach());
        let mut mu = normalize_rows(prototypes.detach());
        let mut centres = self.scale_z(prototype_coords.detach());
        let sigma = self.fwhm / 2.355;
        for _ in 0..self.iterations {
            let s = softmax(
                normed
                    .clone()
                    .matmul(mu.clone().transpose())
                    .div_scalar(self.temperature),
                1,
            );
            let g = squared_distances(coords.clone(), centres.clone())
                .div_scalar(-2.0 * sigma * sigma)
                .exp();
            let w = s * g; // [N, P]
            let mass = w.clone().sum_dim(0).transpose().clamp_min(1e-12); // [P, 1]
            mu = normalize_rows(w.clone().transpose().matmul(features.clone()) / mass.clone());
            centres = w.transpose().matmul(coords.clone()) / mass;
        }
        let [p, _] = centres.dims();
        let unscaled_z = centres.clone().narrow(1, 2, 1).div_scalar(self.z_scale);
        let centres = Tensor::cat(vec![centres.narrow(1, 0, 2), unscaled_z], 1);
        debug_assert_eq!(centres.dims()[0], p);
        (mu, centres)
    }

    /// Soft assignments `softmax_p(ê · μ̂ / τ)` `[N, P]` of `features` to `prototypes`.
    pub fn assign(features: Tensor<2>, prototypes: Tensor<2>, temperature: f64) -> Tensor<2> {
        softmax(
            normalize_rows(features)
                .matmul(prototypes.transpose())
                .div_scalar(temperature),
            1,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use ept_backend::rng::Rng;

    /// Three clusters with distinct feature directions, each in its own image region;
    /// prototypes start from one noisy member each, shuffled. After clustering, every
    /// point's arg-max prototype is its own cluster's.
    #[test]
    fn separable_clusters_are_recovered() {
        let device = Device::flex();
        let mut rng = Rng::new(7);
        let directions = [[1.0, 0.0, 0.0, 0.2], [0.0, 1.0, 0.1, 0.0], [0.1, 0.0, 0.0, 1.0]];
        let centres = [[10.0, 10.0, 0.0], [60.0, 20.0, 0.0], [30.0, 70.0, 0.0]];
        let (mut feats, mut coords, mut truth) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..40 {
            for (k, (d, c)) in directions.iter().zip(&centres).enumerate() {
                feats.extend(d.iter().map(|v| (v + 0.15 * rng.normal()) as f32 * 3.0));
                coords.extend(c.iter().map(|v| (v + 5.0 * rng.normal()) as f32));
                truth.push(k);
            }
        }
        let n = truth.len();
        let features = Tensor::<2>::from_data(TensorData::new(feats.clone(), [n, 4]), &device);
        let coords_t = Tensor::<2>::from_data(TensorData::new(coords.clone(), [n, 3]), &device);
        // initial prototypes: members 5 (cluster 2), 1 (cluster 1), 3 (cluster 0)
        let init: Vec<usize> = vec![5, 1, 3];
        let pick = |data: &[f32], w: usize| -> Vec<f32> {
            init.iter()
                .flat_map(|&i| data[i * w..(i + 1) * w].to_vec())
                .collect()
        };
        let protos = Tensor::<2>::from_data(TensorData::new(pick(&feats, 4), [3, 4]), &device);
        let proto_coords = Tensor::<2>::from_data(TensorData::new(pick(&coords, 3), [3, 3]), &device);
        let (mu, _) = SoftKMeans::default().cluster(features.clone(), coords_t, protos, proto_coords);
        let assignment = SoftKMeans::assign(features, mu, 0.033).argmax(1);
        let assignment: Vec<i64> = assignment
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        let expected_proto = [2i64, 1, 0]; // cluster k was seeded by prototype expected_proto[k]
        for (a, k) in assignment.iter().zip(&truth) {
            assert_eq!(*a, expected_proto[*k]);
        }
    }

    #[test]
    fn distances_are_squared_euclidean() {
        let device = Device::flex();
        let a = Tensor::<2>::from_data(TensorData::new(vec![0f32, 0., 0., 1., 2., 2.], [2, 3]), &device);
        let b = Tensor::<2>::from_data(TensorData::new(vec![1f32, 2., 2.], [1, 3]), &device);
        let d: Vec<f32> = squared_distances(a, b).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(d, vec![9.0, 0.0]);
    }
}

//! Convolution, normalisation and up-sampling for `[B, C, X, Y, Z]` tensors, written
//! once for 2-D and 3-D: a kernel of depth 1 on a depth-1 map runs as a 2-D convolution
//! (same numbers, the faster kernel), anything else as a 3-D one.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig3d};
use burn::tensor::module::{conv2d, conv3d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};

/// A convolution over `[B, C, X, Y, Z]` with "same" padding `(k − 1) / 2` per axis.
#[derive(Module, Debug)]
pub struct ConvNd {
    /// `[C_out, C_in, kX, kY, kZ]`.
    pub weight: Param<Tensor<5>>,
    pub bias: Option<Param<Tensor<1>>>,
    pub stride: [usize; 3],
}

impl ConvNd {
    /// PyTorch's default initialisation (Kaiming-uniform, a = √5).
    pub fn new(
        c_in: usize,
        c_out: usize,
        kernel: [usize; 3],
        stride: [usize; 3],
        bias: bool,
        device: &Device,
    ) -> Self {
        // Conv3dConfig's default initializer is PyTorch's; reuse it rather than re-derive.
        let conv: Conv3d = Conv3dConfig::new([c_in, c_out], kernel)
            .with_stride(stride)
            .with_bias(bias)
            .with_padding(PaddingConfig3d::Valid)
            .init(device);
        ConvNd {
            weight: conv.weight,
            bias: conv.bias,
            stride,
        }
    }

    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let [c_out, _, kx, ky, kz] = self.weight.dims();
        let [b, c, sx, sy, sz] = x.dims();
        let bias = self.bias.as_ref().map(|p| p.val());
        if kz == 1 && sz == 1 {
            let weight = self
                .weight
                .val()
                .reshape([c_out as i32, -1, kx as i32, ky as i32]);
            let options = ConvOptions::new([self.stride[0], self.stride[1]], [kx / 2, ky / 2], [1, 1], 1);
            let y = conv2d(x.reshape([b, c, sx, sy]), weight, bias, options);
            let [_, _, ox, oy] = y.dims();
            return y.reshape([b, c_out, ox, oy, 1]);
        }
        let options = ConvOptions::new(self.stride, [kx / 2, ky / 2, kz / 2], [1, 1, 1], 1);
        conv3d(x, self.weight.val(), bias, options)
    }
}

/// BatchNorm over the channel axis (running statistics when frozen or evaluating).
pub fn batch_norm(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels).init(device)
}

/// LeakyReLU with the reference's slope 0.01.
pub fn lrelu(x: Tensor<5>) -> Tensor<5> {
    burn::tensor::activation::leaky_relu(x, 0.01)
}

/// Linear up-sampling by `factor[a] ∈ {1, 2}` per spatial axis, equal to PyTorch's
/// `Upsample(scale_factor=2, mode='trilinear', align_corners=False)` on those axes:
/// `out[2i] = ¾·x[i] + ¼·x[i−1]`, `out[2i+1] = ¾·x[i] + ¼·x[i+1]`, indices clamped.
pub fn upsample2(x: Tensor<5>, factor: [usize; 3]) -> Tensor<5> {
    (0..3).fold(x, |x, a| {
        if factor[a] == 2 {
            upsample2_axis(x, a + 2)
        } else {
            x
        }
    })
}

fn upsample2_axis(x: Tensor<5>, axis: usize) -> Tensor<5> {
    let n = x.dims()[axis];
    let first = x.clone().narrow(axis, 0, 1);
    let last = x.clone().narrow(axis, n - 1, 1);
    let prev = if n > 1 {
        Tensor::cat(vec![first, x.clone().narrow(axis, 0, n - 1)], axis)
    } else {
        first
    };
    let next = if n > 1 {
        Tensor::cat(vec![x.clone().narrow(axis, 1, n - 1), last], axis)
    } else {
        last
    };
    let centre = x.mul_scalar(0.75);
    let even = centre.clone() + prev.mul_scalar(0.25);
    let odd = centre + next.mul_scalar(0.25);
    let mut dims = even.dims();
    dims[axis] *= 2;
    Tensor::stack::<6>(vec![even, odd], axis + 1).reshape(dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn upsample_matches_pytorch_trilinear_by_hand() {
        // torch: F.interpolate(tensor([1., 2., 4.]).view(1,1,3,1,1), scale_factor=(2,1,1),
        // mode='trilinear', align_corners=False) = [1, 1.25, 1.75, 2.5, 3.5, 4]
        let device = Device::flex();
        let x = Tensor::<5>::from_data(TensorData::new(vec![1f32, 2., 4.], [1, 1, 3, 1, 1]), &device);
        let y: Vec<f32> = upsample2(x, [2, 1, 1]).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(y, vec![1.0, 1.25, 1.75, 2.5, 3.5, 4.0]);
    }

    #[test]
    fn depth_one_conv_equals_the_3d_conv() {
        let device = Device::flex();
        let conv = ConvNd::new(3, 4, [3, 3, 1], [2, 2, 1], true, &device);
        let x = Tensor::<5>::random(
            [2, 3, 9, 7, 1],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let fast = conv.forward(x.clone());
        let options = ConvOptions::new([2, 2, 1], [1, 1, 0], [1, 1, 1], 1);
        let full = conv3d(x, conv.weight.val(), conv.bias.as_ref().map(|b| b.val()), options);
        assert_eq!(fast.dims(), [2, 4, 5, 4, 1]);
        let diff: f32 = (fast - full).abs().max().into_scalar();
        assert!(diff < 1e-5, "{diff}");
    }
}

//! Student ↔ teacher position matching: every student position is paired with the
//! teacher position whose coordinates in the original image are nearest, and kept only
//! if that distance is at most `max_distance` voxels (z distances scaled, as in k-means).

/// For each student position (`[N_s, 3]` row-major coordinates), the index of the
/// nearest teacher position, or `None` when none is within `max_distance`.
pub fn match_positions(
    student: &[f32],
    teacher: &[f32],
    max_distance: f32,
    z_scale: f32,
) -> Vec<Option<usize>> {
    let limit = max_distance * max_distance;
    student
        .chunks_exact(3)
        .map(|s| {
            let mut best = (f32::INFINITY, 0);
            for (j, t) in teacher.chunks_exact(3).enumerate() {
                let (dx, dy, dz) = (s[0] - t[0], s[1] - t[1], (s[2] - t[2]) * z_scale);
                let d = dx * dx + dy * dy + dz * dz;
                if d < best.0 {
                    best = (d, j);
                }
            }
            (best.0 <= limit).then_some(best.1)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(offset: [f32; 2], size: usize, step: f32) -> Vec<f32> {
        (0..size)
            .flat_map(|i| {
                (0..size).flat_map(move |j| [offset[0] + i as f32 * step, offset[1] + j as f32 * step, 3.0])
            })
            .collect()
    }

    /// A student crop at a known offset inside the teacher crop: every student position
    /// finds the teacher position of the identical pixel.
    #[test]
    fn crops_with_known_offsets_pair_identical_pixels() {
        let teacher = grid([0.0, 0.0], 16, 1.0);
        for (ox, oy) in [(0usize, 0usize), (3, 5), (8, 1)] {
            let student = grid([ox as f32, oy as f32], 8, 1.0);
            let matched = match_positions(&student, &teacher, 4.0, 2.0);
            for (n, m) in matched.iter().enumerate() {
                let (i, j) = (n / 8, n % 8);
                assert_eq!(*m, Some((i + ox) * 16 + j + oy));
            }
        }
    }

    #[test]
    fn far_positions_are_dropped_and_z_counts_double() {
        let teacher = vec![0.0, 0.0, 0.0];
        let student = vec![3.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0, 1.5];
        // (3,0,0) at 3 ≤ 4: kept; (5,0,0) at 5: dropped; z 1.5 × 2 = 3: kept
        assert_eq!(
            match_positions(&student, &teacher, 4.0, 2.0),
            vec![Some(0), None, Some(0)]
        );
    }
}

//! Newton-CG for one class's weighted, L2-regularised logistic
//! regression (liblinear's method): the gradient, Hessian-vector products
//! `Xᵀ·diag(C·s·p(1−p))·X·v + v`, conjugate gradients to a relative
//! residual of min(0.1, √‖g‖), Armijo backtracking; stops at a gradient
//! 10⁻⁶ of its start, or when a step no longer lowers the objective.

pub(super) fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

pub(super) fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

/// `x·w + b` per row, θ = (w, b).
pub(super) fn margins(x: &[f64], dim: usize, theta: &[f64]) -> Vec<f64> {
    x.chunks_exact(dim)
        .map(|row| theta[dim] + row.iter().zip(theta).map(|(a, b)| a * b).sum::<f64>())
        .collect()
}

/// One class's weighted, L2-regularised logistic regression.
pub(super) struct Problem<'a> {
    pub x: &'a [f64],
    pub y: &'a [bool],
    pub s: &'a [f64],
    pub dim: usize,
    pub cost: f64,
}

impl Problem<'_> {
    pub fn value(&self, theta: &[f64], z: &[f64]) -> f64 {
        let data: f64 = z
            .iter()
            .zip(self.y)
            .zip(self.s)
            .map(|((&z, &t), &s)| s * (softplus(z) - if t { z } else { 0.0 }))
            .sum();
        self.cost * data + 0.5 * theta[..self.dim].iter().map(|w| w * w).sum::<f64>()
    }

    /// `Xᵀ·r` with the intercept's sum appended, plus `reg·w`.
    pub fn xt(&self, r: &[f64], theta_reg: Option<&[f64]>) -> Vec<f64> {
        let dim = self.dim;
        let mut g = vec![0.0; dim + 1];
        for (row, &ri) in self.x.chunks_exact(dim).zip(r) {
            if ri != 0.0 {
                for (gd, &v) in g.iter_mut().zip(row) {
                    *gd += ri * v;
                }
            }
            g[dim] += ri;
        }
        if let Some(w) = theta_reg {
            for (gd, &wd) in g.iter_mut().zip(&w[..dim]) {
                *gd += wd;
            }
        }
        g
    }
}

pub(super) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Minimises the problem from `theta` (warm start) in place.
pub(super) fn newton_cg(p: &Problem, theta: &mut [f64]) {
    let dim = p.dim;
    let mut z = margins(p.x, dim, theta);
    let mut f = p.value(theta, &z);
    let mut g0 = None;
    for _ in 0..60 {
        let r: Vec<f64> = z
            .iter()
            .zip(p.y)
            .zip(p.s)
            .map(|((&z, &t), &s)| p.cost * s * (sigmoid(z) - if t { 1.0 } else { 0.0 }))
            .collect();
        let g = p.xt(&r, Some(theta));
        let gnorm = dot(&g, &g).sqrt();
        let g0 = *g0.get_or_insert(gnorm.max(1e-12));
        if gnorm <= 1e-6 * g0 || gnorm < 1e-10 {
            break;
        }
        // Curvature per sample: C·s·p(1−p).
        let h: Vec<f64> = z
            .iter()
            .zip(p.s)
            .map(|(&z, &s)| {
                let q = sigmoid(z);
                p.cost * s * q * (1.0 - q)
            })
            .collect();
        let hv = |v: &[f64]| -> Vec<f64> {
            let xv = margins(p.x, dim, v);
            let r: Vec<f64> = xv.iter().zip(&h).map(|(a, b)| a * b).collect();
            let mut out = p.xt(&r, Some(v));
            out[dim] += 1e-10 * v[dim];
            out
        };
        // Conjugate gradients on H·d = −g.
        let mut d = vec![0.0; dim + 1];
        let mut res: Vec<f64> = g.iter().map(|v| -v).collect();
        let mut dir = res.clone();
        let mut rr = dot(&res, &res);
        let tol = (0.1f64.min(gnorm.sqrt()) * gnorm).powi(2);
        for _ in 0..200 {
            if rr <= tol {
                break;
            }
            let hd = hv(&dir);
            let curv = dot(&dir, &hd);
            if curv <= 0.0 {
                break;
            }
            let a = rr / curv;
            d.iter_mut().zip(&dir).for_each(|(x, v)| *x += a * v);
            res.iter_mut().zip(&hd).for_each(|(x, v)| *x -= a * v);
            let next = dot(&res, &res);
            let beta = next / rr;
            rr = next;
            dir.iter_mut()
                .zip(&res)
                .for_each(|(x, r)| *x = r + beta * *x);
        }
        let slope = dot(&g, &d);
        if slope >= 0.0 {
            break;
        }
        let mut t = 1.0;
        let mut moved = false;
        for _ in 0..40 {
            let trial: Vec<f64> = theta.iter().zip(&d).map(|(a, b)| a + t * b).collect();
            let zt = margins(p.x, dim, &trial);
            let ft = p.value(&trial, &zt);
            if ft <= f + 1e-4 * t * slope {
                theta.copy_from_slice(&trial);
                z = zt;
                moved = (f - ft).abs() > 1e-12 * f.abs().max(1.0);
                f = ft;
                break;
            }
            t *= 0.5;
        }
        if !moved {
            break;
        }
    }
}

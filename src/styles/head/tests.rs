use super::newton::dot;
use super::*;
use crate::rng::Rng;

/// `n` rows of `dim` standard normal features (shifted by `offset` to
/// check the head is expressed on raw features) and `u·x + noise·e`.
fn data(rng: &mut Rng, n: usize, u: &[f32], noise: f32, offset: f32) -> (Vec<f32>, Vec<f32>) {
    let dim = u.len();
    let mut x = Vec::with_capacity(n * dim);
    let mut score = Vec::with_capacity(n);
    for _ in 0..n {
        let row: Vec<f32> = (0..dim).map(|_| rng.normal()).collect();
        score.push(row.iter().zip(u).map(|(a, b)| a * b).sum::<f32>() + noise * rng.normal());
        x.extend(row.iter().map(|v| v * 3.0 + offset));
    }
    (x, score)
}

fn never() -> AtomicBool {
    AtomicBool::new(false)
}

#[test]
fn recovers_a_planted_direction() {
    let mut rng = Rng::new(7);
    let dim = 24;
    let u: Vec<f32> = (0..dim).map(|_| rng.normal()).collect();
    let (x, s) = data(&mut rng, 600, &u, 0.5, 10.0);
    let (xv, sv) = data(&mut rng, 300, &u, 0.5, 10.0);
    let y: Vec<Vec<f32>> = s.iter().map(|&v| vec![(v > 0.0) as u8 as f32]).collect();
    let yv: Vec<Vec<f32>> = sv.iter().map(|&v| vec![(v > 0.0) as u8 as f32]).collect();
    let head = fit(
        Set { x: &x, y: &y },
        Set { x: &xv, y: &yv },
        dim,
        &["a".into()],
        &HeadOptions::default(),
        &|_, _| {},
        &never(),
    )
    .unwrap();
    let w: Vec<f64> = (0..dim).map(|d| head.weights[d] as f64).collect();
    let cos = w.iter().zip(&u).map(|(a, &b)| a * b as f64).sum::<f64>()
        / (w.iter().map(|a| a * a).sum::<f64>().sqrt()
            * u.iter().map(|&b| (b as f64).powi(2)).sum::<f64>().sqrt());
    assert!(cos > 0.97, "cosine to the planted direction {cos}");
    // Accuracy on held-out rows, through the raw-feature head.
    let probs = head.predict(&xv);
    let right = probs
        .iter()
        .zip(&yv)
        .filter(|(p, t)| (p[0] >= 0.5) == (t[0] >= 0.5))
        .count();
    assert!(right as f64 / yv.len() as f64 > 0.9, "{right}/{}", yv.len());
}

#[test]
fn newton_cg_reaches_the_optimum() {
    let mut rng = Rng::new(3);
    let dim = 16;
    let u: Vec<f32> = (0..dim).map(|_| rng.normal()).collect();
    let (x, s) = data(&mut rng, 300, &u, 2.0, 0.0);
    let xs: Vec<f64> = x.iter().map(|&v| v as f64 / 3.0).collect();
    let y: Vec<bool> = s.iter().map(|&v| v > 0.5).collect();
    let w: Vec<f64> = y.iter().map(|&t| if t { 1.7 } else { 0.6 }).collect();
    let p = Problem {
        x: &xs,
        y: &y,
        s: &w,
        dim,
        cost: 0.3,
    };
    let mut theta = vec![0.0; dim + 1];
    newton_cg(&p, &mut theta);
    let z = margins(&xs, dim, &theta);
    let r: Vec<f64> = z
        .iter()
        .zip(&y)
        .zip(&w)
        .map(|((&z, &t), &s)| p.cost * s * (sigmoid(z) - t as u8 as f64))
        .collect();
    let g = p.xt(&r, Some(&theta));
    let gnorm = dot(&g, &g).sqrt();
    assert!(gnorm < 1e-4, "gradient norm at the solution {gnorm}");
    // Any small step away costs.
    let f = p.value(&theta, &z);
    for k in 0..=dim {
        let mut t = theta.clone();
        t[k] += 1e-2;
        assert!(p.value(&t, &margins(&xs, dim, &t)) > f);
    }
}

#[test]
fn weights_lift_the_rare_class_f2() {
    let mut rng = Rng::new(11);
    let dim = 12;
    let u: Vec<f32> = (0..dim).map(|_| rng.normal() * 0.5).collect();
    // A common class and a rare one (~6% positives), both noisy.
    let make = |rng: &mut Rng, n| {
        let (x, s) = data(rng, n, &u, 1.0, 0.0);
        let y: Vec<Vec<f32>> = s
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let common = x[i * dim] > 0.0;
                vec![common as u8 as f32, (v > 2.6) as u8 as f32]
            })
            .collect();
        (x, y)
    };
    let (x, y) = make(&mut rng, 1500);
    let (xv, yv) = make(&mut rng, 800);
    let (xt, yt) = make(&mut rng, 3000);
    let rare = y.iter().filter(|r| r[1] > 0.5).count();
    assert!((40..200).contains(&rare), "{rare} rare positives");
    assert_eq!(fn_weights_from_frequency(&y, 2), vec![1.0, 1.5]);
    let names = ["common".to_string(), "rare".to_string()];
    let f2 = |o: &HeadOptions| {
        let head = fit(
            Set { x: &x, y: &y },
            Set { x: &xv, y: &yv },
            dim,
            &names,
            o,
            &|_, _| {},
            &never(),
        )
        .unwrap();
        let p: Vec<f32> = head.predict(&xt).iter().map(|r| r[1]).collect();
        let t: Vec<bool> = yt.iter().map(|r| r[1] > 0.5).collect();
        f2_at(&p, &t, 0.5)
    };
    let plain = f2(&HeadOptions {
        balance: false,
        fn_weights: Some(vec![1.0, 1.0]),
        ..HeadOptions::default()
    });
    let weighted = f2(&HeadOptions::default());
    assert!(
        weighted > plain + 0.1,
        "rare class F2 at 0.5: weighted {weighted:.3}, plain {plain:.3}"
    );
}

#[test]
fn a_class_without_positives_is_named_and_stop_stops() {
    let x = vec![0.0f32, 1.0, 2.0, 3.0];
    let y = vec![vec![1.0, 0.0], vec![0.0, 0.0]];
    let names = ["has".to_string(), "none".to_string()];
    let set = || Set { x: &x, y: &y };
    let e = fit(
        set(),
        set(),
        2,
        &names,
        &HeadOptions::default(),
        &|_, _| {},
        &never(),
    );
    assert_eq!(e.unwrap_err(), HeadError::NoPositives("none".into()));
    let y1 = vec![vec![1.0], vec![0.0]];
    let stop = AtomicBool::new(true);
    let set1 = || Set { x: &x, y: &y1 };
    let e = fit(
        set1(),
        set1(),
        2,
        &names[..1],
        &HeadOptions::default(),
        &|_, _| {},
        &stop,
    );
    assert_eq!(e.unwrap_err(), HeadError::Stopped);
}

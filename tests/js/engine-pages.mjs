// What the page tests in Firefox and WebKit run inside the bare test page
// (tests/js/pages/bare.html). Plain functions, so either driver can send
// them: puppeteer-core's page.evaluate takes the function, the WebDriver
// client its source.

/** A correction of `text`, and the predictions around it. */
export async function teachOnce(text) {
  const classifier = await lt.Classifier.load('/bundles/default/');
  const before = classifier.predict(text).label;
  await classifier.addFeedback(text, 'Fitness');
  return {
    relaxed: lt.relaxedSimdEnabled(),
    before,
    after: classifier.predict(text).label,
    stored: (await classifier.stats()).sampleCount,
  };
}

/** After a reload: what the stored correction makes of `text`. */
export async function afterReload(text) {
  const classifier = await lt.Classifier.load('/bundles/default/');
  return { label: classifier.predict(text).label, stored: (await classifier.stats()).sampleCount };
}

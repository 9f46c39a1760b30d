// CloudFront Function (cloudfront-js-2.0), viewer request of the frontend's behaviour only: a client route
// (no dot in its last segment: /approvals, /quests/12) answers the app's index.html; a file (/assets/x.js,
// /favicon.ico) is fetched as asked, so a missing file stays a 403/404. /api/* never reaches this function.
function handler(event) {
    var request = event.request;
    var last = request.uri.split('/').pop();
    if (last.indexOf('.') === -1) {
        request.uri = '/index.html';
    }
    return request;
}

// frontend.health_path: deployctl calls the release good only once this answers 200.
export function GET() {
  return Response.json({ ok: true });
}
